"""B3 peers: the ANN libraries users would deploy instead of ScaNN, behind one interface.

- `faiss_ivf_flat`: Faiss IVF-Flat, nlist = 4 sqrt(N) (the Faiss wiki's 4-16 sqrt(N) range),
  k-means trained on 50 items per list, knob `nprobe`;
- `faiss_ivf_pq`: Faiss IVF-PQ, 4-bit fast-scan codes of 2 dimensions each (32 bytes per
  64-d item, like ScaNN's AH codes) re-ranked on exact floats (RFlat) with k_factor 100
  (1,000 candidates; k_factor 20, ScaNN's 200, capped recall@10 at .856 at 1M items), same
  nlist, knob `nprobe`;
- `faiss_hnsw`: Faiss HNSW-Flat, M = 32, efConstruction = 40 (Faiss defaults), knob `efSearch`;
- `hnswlib`: hnswlib HNSW, M = 16 (its README), ef_construction = 100 (its README's 200
  took 140 s at 100k items on the loaded machine), knob `ef`.
All score by inner product. Each `search(queries [B, dim])` returns (indices [B, k], None)
like the TF searchers; a single query runs on 1 thread (as ScaNN's does), a batch on all.
faiss-cpu and hnswlib live in `.venv-ann` (`make bench-env`), beside the TF environment;
Faiss runs with OMP_WAIT_POLICY=PASSIVE unless the caller set it (see import_peers).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

from bench.index_sweep import pick_setting, sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS_DIR = os.path.join(REPO, ".venv-ann")
PROBE_LADDER = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
TRAIN_PER_LIST = 50
EF_LADDER = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def import_peers():
    """(faiss, hnswlib) from .venv-ann, appended to sys.path (so .venv's numpy wins).

    Raises:
        ImportError: naming the make target that installs them.
    """
    # Faiss's OpenMP threads spin while waiting by default: on a shared, oversubscribed
    # machine (load 14 on 2 cores here) that made IVF-PQ training 35x slower (83 s vs 2.3 s
    # at 20k items). Read by libgomp when faiss loads it, i.e. on the first import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if os.path.isdir(PEERS_DIR) and PEERS_DIR not in sys.path:
        sys.path.append(PEERS_DIR)
    try:
        import faiss
        import hnswlib
    except ImportError as exc:
        raise ImportError(
            f"B3's peers need faiss-cpu and hnswlib in {PEERS_DIR}: run `make bench-env` "
            f"(bench/requirements-ann.txt), or pass --no-peers ({exc})"
        ) from exc
    return faiss, hnswlib


def ivf_lists(num_items: int) -> int:
    """4 sqrt(N) inverted lists, at least 1 and at most N / 39 (Faiss wants >= 39 training
    points per centroid), rounded."""
    return int(max(1, min(round(4 * np.sqrt(num_items)), num_items // 39)))


class Peer:
    """A built index with one search knob; subclasses implement _build/_set/_search/_bytes."""

    name = knob = ""
    ladder: tuple = ()
    numpy_input = True  # the latency loop hands it numpy rows, not tf tensors

    def __init__(self, k: int, max_batch: int):
        self.k, self.max_batch = k, max_batch
        self.build_s, self.value = 0.0, None

    def build(self, items: np.ndarray) -> Peer:
        """Trains and fills the index with items [N, dim] (unit norm, float32)."""
        self.num_items = len(items)
        start = time.perf_counter()
        self._build(np.ascontiguousarray(items, np.float32))
        self.build_s = time.perf_counter() - start
        return self

    def set_knob(self, value) -> None:
        self.value = value
        self._set(value)

    def knob_values(self) -> list:
        return [v for v in self.ladder if self._valid(v)]

    def _valid(self, value) -> bool:
        return value >= self.k

    def search(self, queries):
        """queries [B, dim] (numpy or tf) -> (indices [B, k] int64, None)."""
        q = np.ascontiguousarray(np.asarray(queries, np.float32))
        return self._search(q, threads=1 if len(q) == 1 else 0), None

    def settings(self) -> dict:
        return {**self.fixed, self.knob: self.value}

    def bytes_per_item(self) -> float:
        return self._bytes() / self.num_items


class _Faiss(Peer):
    def _set(self, value) -> None:
        self.faiss.ParameterSpace().set_index_parameter(self.index, self.knob, value)

    def _search(self, q: np.ndarray, threads: int):
        self.faiss.omp_set_num_threads(threads or os.cpu_count() or 1)
        return self.index.search(q, self.k)[1]

    def _bytes(self) -> float:
        return float(self.faiss.serialize_index(self.index).nbytes)


class FaissIVFFlat(_Faiss):
    name, knob, ladder = "faiss_ivf_flat", "nprobe", PROBE_LADDER
    spec = "IVF{nlist},Flat"

    def _valid(self, value) -> bool:
        return value <= self.fixed["nlist"]

    def _build(self, items: np.ndarray) -> None:
        self.faiss = import_peers()[0]
        self.faiss.omp_set_num_threads(os.cpu_count() or 1)
        nlist = ivf_lists(len(items))
        factory = self.spec.format(nlist=nlist, dim_blocks=items.shape[1] // 2)
        self.fixed = {"index_factory": factory, "nlist": nlist}
        self.index = self.faiss.index_factory(
            items.shape[1], factory, self.faiss.METRIC_INNER_PRODUCT
        )
        train = min(len(items), TRAIN_PER_LIST * nlist)  # Faiss wants 30-256 per centroid
        self.fixed["train_points"] = train
        self.index.train(items[np.random.default_rng(0).permutation(len(items))[:train]])
        self.index.add(items)


class FaissIVFPQ(FaissIVFFlat):
    name = "faiss_ivf_pq"
    spec = "IVF{nlist},PQ{dim_blocks}x4fs,RFlat"
    K_FACTOR = 100

    def _build(self, items: np.ndarray) -> None:
        super()._build(items)
        # The IndexRefineFlat's k_factor (the downcast wrapper does not own the index).
        self.faiss.downcast_index(self.index).k_factor = self.K_FACTOR
        self.fixed["k_factor"] = self.K_FACTOR


class FaissHNSW(_Faiss):
    name, knob, ladder = "faiss_hnsw", "efSearch", EF_LADDER
    M, EF_CONSTRUCTION = 32, 40

    def _build(self, items: np.ndarray) -> None:
        self.faiss = import_peers()[0]
        self.faiss.omp_set_num_threads(os.cpu_count() or 1)
        self.index = self.faiss.IndexHNSWFlat(
            items.shape[1], self.M, self.faiss.METRIC_INNER_PRODUCT
        )
        self.index.hnsw.efConstruction = self.EF_CONSTRUCTION
        self.fixed = {"M": self.M, "efConstruction": self.EF_CONSTRUCTION}
        self.index.add(items)


class Hnswlib(Peer):
    name, knob, ladder = "hnswlib", "ef", EF_LADDER
    M, EF_CONSTRUCTION = 16, 100

    def _build(self, items: np.ndarray) -> None:
        hnswlib = import_peers()[1]
        self.index = hnswlib.Index(space="ip", dim=items.shape[1])
        self.index.init_index(len(items), ef_construction=self.EF_CONSTRUCTION, M=self.M)
        self.index.add_items(items, np.arange(len(items)), num_threads=os.cpu_count() or 1)
        self.fixed = {"M": self.M, "ef_construction": self.EF_CONSTRUCTION}

    def _set(self, value) -> None:
        self.index.set_ef(value)

    def _search(self, q: np.ndarray, threads: int):
        return self.index.knn_query(q, self.k, num_threads=threads or -1)[0]

    def _bytes(self) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "index.bin")
            self.index.save_index(path)
            return float(os.path.getsize(path))


PEERS = (FaissIVFFlat, FaissIVFPQ, FaissHNSW, Hnswlib)
PEER_NAMES = tuple(cls.name for cls in PEERS)


def tune_peers(
    items: np.ndarray, queries: np.ndarray, exact: np.ndarray, k: int, batch: int, names=PEER_NAMES
):
    """Builds each named peer on items [N, dim], sweeps its knob against exact [Q, k] and
    sets it to the pick; returns (name -> peer, name -> sweep, name -> {settings, ...})."""
    searchers, sweeps, rows = {}, {}, {}
    for cls in (c for c in PEERS if c.name in names):
        peer = cls(k, batch).build(items)
        print(f"    {peer.name}: built in {peer.build_s:.1f} s; sweep {peer.knob}", flush=True)

        def at(value, peer=peer):
            peer.set_knob(value)
            return peer

        sweeps[peer.name] = sweep(at, peer.knob_values(), queries, exact)
        pick = pick_setting(sweeps[peer.name])
        peer.set_knob(pick["knob"])
        searchers[peer.name] = peer
        rows[peer.name] = {
            "settings": peer.settings(),
            "reached_0.95": pick["reached"],
            "build_s": peer.build_s,
            "bytes_per_item": peer.bytes_per_item(),
        }
        print(f"      pick {peer.settings()} (recall@10 {pick['recall@10']:.4f})", flush=True)
    return searchers, sweeps, rows
