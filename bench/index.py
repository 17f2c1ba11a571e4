"""BENCHMARKS B3: ScaNN vs exact search and the ANN libraries users would pick instead.

For N in 10k, 100k, 1M items (64-d, unit norm, Zipf-sized topic clusters) and
1,000 queries, builds the index the ScannIndexBuilder would build (its default
parameters for N) and measures, side by side in one run:
- `scann`: the ScaNN TF-op searcher called through its tf.function, and `scann_served`:
  the same op as the server calls it (its concrete function, i.e. a loaded signature, on
  TF's single-threaded executor: serving/servable.py); `scann_pybind`: ScaNN's own
  pybind searcher with the same config (no TF);
- `exact`: matmul + top_k through a tf.function (the portable exact searcher);
- `portable`: the stock-op partitioned searcher (k-means leaves, padded);
- peers (bench/index_peers.py, from .venv-ann): Faiss IVF-Flat, IVF-PQ (fast scan +
  exact re-rank) and HNSW, and hnswlib HNSW, each swept over its main knob and run at
  the cheapest setting reaching recall@10 >= 0.95 (bench/index_sweep.py).
Recall@10 against exact top-10; single-query p50/p99 (each searcher answers
blocks of consecutive queries, blocks rotating across searchers over 5 rounds);
batched queries/s; build time and bytes per item; exact search's achieved
memory bandwidth against a measured memcpy; the target check against the fastest peer;
a profile of one TF-op search (bench/index_profile.py). Writes bench/results/index.json,
index.png (p50 per N) and index_recall_latency.png (one recall-vs-p50 curve per system).

    python -m bench.index [--quick] [--sizes 10000,100000] [--queries 1000]
        [--peers faiss_ivf_flat,faiss_ivf_pq,faiss_hnsw,hnswlib | --no-peers] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from bench.index_scann import BATCH, K

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results")
DIM = 64


def clustered(num_items: int, dim: int = DIM, num_queries: int = 1000, seed: int = 0):
    """Unit-norm item embeddings [N, dim] around Zipf-weighted topics, and queries [Q, dim].

    2 sqrt(N) topic centres ~ N(0, I); an item is its topic's centre plus
    N(0, 0.7^2 I) noise, normalised; a query mixes a topic (drawn by the same
    popularity) with a second one at weight 0.3, plus noise (not normalised,
    like a query tower's output).
    """
    rng = np.random.default_rng(seed)
    topics = max(4, int(2 * np.sqrt(num_items)))
    centres = rng.normal(size=(topics, dim)).astype(np.float32)
    weights = 1.0 / np.arange(1, topics + 1) ** 0.8
    weights /= weights.sum()
    items = np.empty((num_items, dim), np.float32)
    for start in range(0, num_items, 100_000):
        n = min(100_000, num_items - start)
        rows = centres[rng.choice(topics, size=n, p=weights)]
        rows += 0.7 * rng.standard_normal((n, dim), dtype=np.float32)
        items[start : start + n] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    first, second = rng.choice(topics, size=(2, num_queries), p=weights)
    queries = centres[first] + 0.3 * centres[second]
    queries += 0.7 * rng.standard_normal((num_queries, dim), dtype=np.float32)
    return items, queries.astype(np.float32)


def memory_bandwidth_gbs(mib: int = 512, repeats: int = 5) -> float:
    """Best-of-repeats memcpy bandwidth (GB/s, bytes read + written) on `mib` MiB arrays."""
    src = np.ones(mib * 2**18, np.float32)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    return 2 * src.nbytes / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _single_latencies(searchers: dict, queries: np.ndarray, rounds: int = 5) -> dict:
    """p50/p99 ms of one-query calls: each searcher runs a block of consecutive queries,
    the blocks rotate over `rounds` rounds (so load changes hit all searchers alike, and one
    searcher's memory traffic, e.g. exact's 256 MB scan, does not evict another's data)."""
    from bench.index_sweep import single_times

    times = {name: [] for name in searchers}
    names = list(searchers)
    for r, block in enumerate(np.array_split(queries, rounds)):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name] += single_times(searchers[name], block)
    return {
        name: {"p50_ms": 1e3 * np.percentile(t, 50), "p99_ms": 1e3 * np.percentile(t, 99)}
        for name, t in times.items()
    }


def _batched_qps(searcher, queries: np.ndarray, repeats: int = 3) -> float:
    """Median queries/s over repeats of searching all queries in batches of BATCH (or the
    searcher's max_batch, if smaller)."""
    import tensorflow as tf

    from models.search.searchers import chunks

    batches = chunks(queries, min(BATCH, searcher.max_batch))
    if not getattr(searcher, "numpy_input", False):
        batches = [tf.constant(b) for b in batches]
    run = lambda: [np.asarray(searcher.search(b)[0]) for b in batches]  # noqa: E731
    run()
    return len(queries) / float(np.median([_timed(run) for _ in range(repeats)]))


def run_size(num_items: int, num_queries: int, bandwidth: float, peers: list[str]) -> dict:
    """Builds the index for N items and measures every searcher (and the named peers);
    returns the N's row."""
    from bench.index_profile import profile_tf_op
    from bench.index_scann import Pybind, Served, pybind_searcher, sweep_scann
    from bench.index_sweep import pick_setting, target_check
    from components.scann_index_builder import evaluate
    from models.search import index as I
    from models.search.params import choose_params

    items, queries = clustered(num_items, num_queries=num_queries)
    params = choose_params(num_items)
    print(f"--- N = {num_items:,}: {params}", flush=True)
    start = time.perf_counter()
    index = I.build_index([str(i) for i in range(num_items)], items, params)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    native = pybind_searcher(items, params)
    pybind_build_s = time.perf_counter() - start
    scann = I.scann_searcher(index, K)
    searchers = {
        "scann": scann,
        "scann_served": Served(scann),
        "exact": I.ExactSearcher(items, K),
        "portable": I.portable_searcher(index, K),
        "scann_pybind": Pybind(native, params),
    }
    print(f"    built in {build_s:.1f} s {index.metrics}; pybind {pybind_build_s:.1f} s")
    exact = evaluate.search_all(searchers["exact"], queries, BATCH)
    sweeps = sweep_scann(index, params, native, queries, exact)
    peer_searchers, peer_sweeps, peer_rows = {}, {}, {}
    if peers:
        from bench.index_peers import tune_peers

        found = tune_peers(items, queries, exact, K, BATCH, peers)
        peer_searchers, peer_sweeps, peer_rows = found
    searchers |= peer_searchers
    found = {n: evaluate.search_all(s, queries, BATCH) for n, s in searchers.items()}
    recall = {n: evaluate.recall_at_k(f, exact) for n, f in found.items()}
    print("    single-query latency, batched throughput", flush=True)
    single = _single_latencies(searchers, queries)
    qps = {n: _batched_qps(s, queries) for n, s in searchers.items()}
    measured = {n: {"recall@10": recall[n], **single[n], "batched_qps": qps[n]} for n in searchers}
    for name, row in peer_rows.items():
        measured[name] |= row
    print("    profile of one TF-op search", flush=True)
    profile = profile_tf_op(scann, native, params, queries[:300], K)
    exact_s = single["exact"]["p50_ms"] / 1e3
    row = {
        "recall@10": recall["scann"],
        "scann_p50_ms": single["scann"]["p50_ms"],
        "scann_p99_ms": single["scann"]["p99_ms"],
        "scann_served_p50_ms": single["scann_served"]["p50_ms"],
        "scann_pybind_p50_ms": single["scann_pybind"]["p50_ms"],
        "exact_p50_ms": single["exact"]["p50_ms"],
        "exact_p99_ms": single["exact"]["p99_ms"],
        "speedup_p50": single["exact"]["p50_ms"] / single["scann"]["p50_ms"],
        "build_s": build_s,
        "scann_build_s": index.metrics.get("scann_build_s", 0.0),
        "scann_pybind_build_s": pybind_build_s,
        "portable_build_s": index.metrics.get("partitions_build_s", 0.0),
        "exact_gb_per_s": items.nbytes / exact_s / 1e9,  # read once per query
        "exact_fraction_of_bandwidth": items.nbytes / exact_s / 1e9 / bandwidth,
        "params": params.to_dict(),
        "searchers": measured,
        "sweeps": sweeps | peer_sweeps,
        "target": target_check(measured, list(peer_rows), "scann_served", "scann_pybind"),
        "picks": {name: pick_setting(points) for name, points in (sweeps | peer_sweeps).items()},
        "tf_op_profile": profile,
    }
    return row | _footprint(index)


def _footprint(index) -> dict:
    """Bytes per item of each searcher's tensors."""
    n = len(index.item_ids)
    assets = index.scann_assets or {}
    out = {
        "scann_bytes_per_item": sum(np.asarray(v).nbytes for v in assets.values()) / n,
        "ah_code_bytes_per_item": assets["hashed_dataset"].nbytes / n if assets else 0.0,
        "exact_bytes_per_item": index.embeddings.nbytes / n,
    }
    if index.partitions is not None:
        leaf_items = index.partitions.leaf_items
        out["portable_bytes_per_item"] = (leaf_items.size * DIM * 4 + leaf_items.nbytes) / n
    return out


def _write_json(value: dict, path: str) -> None:
    """Writes value to path atomically (a reader never sees half a file)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=2, default=float)
    os.replace(path + ".tmp", path)


def main(argv=None) -> int:
    from bench import index_report as R
    from bench.index_peers import PEER_NAMES, import_peers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k, 300 queries")
    parser.add_argument("--sizes", default="", help="comma-separated catalog sizes")
    parser.add_argument("--queries", type=int, default=0)
    parser.add_argument("--peers", default=",".join(PEER_NAMES), help="peers to run")
    parser.add_argument("--no-peers", action="store_true", help="skip Faiss and hnswlib")
    parser.add_argument("--out", default=os.path.join(RESULTS, "index.json"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s] or (
        [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    )
    peers = [] if args.no_peers else [p for p in args.peers.split(",") if p]
    unknown = sorted(set(peers) - set(PEER_NAMES))
    if unknown:
        parser.error(f"--peers: unknown {unknown}; known: {', '.join(PEER_NAMES)}")
    if peers:
        import_peers()  # fails here, before any work, when .venv-ann is missing
    num_queries = args.queries or (300 if args.quick else 1000)
    bandwidth = memory_bandwidth_gbs()
    print(f"memory bandwidth (memcpy, read + write): {bandwidth:.1f} GB/s", flush=True)
    results = {}
    for n in sizes:  # the JSON is rewritten after each size: a killed run keeps the sizes done
        results[str(n)] = run_size(n, num_queries, bandwidth, peers)
        meta = {
            "queries": num_queries,
            "dim": DIM,
            "k": K,
            "bandwidth_gb_per_s": bandwidth,
            "peers": peers,
            "loadavg": os.getloadavg(),
            "cpus": os.cpu_count(),
        }
        _write_json({**results, "_meta": meta}, args.out)
    stem = os.path.splitext(args.out)[0]
    R.plot(results, stem + ".png")
    R.plot_sweeps(results, stem + "_recall_latency.png")
    print(f"wrote {args.out}, {stem}.png, {stem}_recall_latency.png")
    print(R.report(results, bandwidth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
