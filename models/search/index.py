"""The item index: catalog ids and embeddings, how to search them, and its files.

API used by the serving model:
    index = load_index(artifact_uri)
    module.retrieval_index = scann_searcher(index, k)     # ScaNN TF ops
    module.portable_index = portable_searcher(index, k)   # stock TF ops only
    indices, scores = module.retrieval_index.search(queries)  # [B, k] each

Files under `<artifact uri>/index/` (written to a temporary directory, then
renamed): item_ids.npy [N] str, embeddings.npy [N, D] float32, params.json,
metrics.json, scann.npz (ScaNN searcher state, when not exact) and
partitions.npz (leaves of the portable searcher, when partitioned).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time

import numpy as np
import tensorflow as tf

from models.search.params import IndexParams
from models.search.partitions import Partitions, build_partitions
from models.search.searchers import (
    ExactSearcher,
    PartitionedSearcher,
    ScannSearcher,
    Searcher,
    scann_assets,
)

INDEX_DIR = "index"
PARAMS_FILE, METRICS_FILE = "params.json", "metrics.json"
_STRINGS = ("scann_config", "serialized_partitioner", "ah_codebook")  # [1] bytes tensors


@dataclasses.dataclass
class Index:
    """A searchable catalog.

    Attributes:
        item_ids: [N] str, the catalog items in index order.
        embeddings: [N, D] float32 candidate embeddings.
        params: how the index is built and searched.
        metrics: build times, recall, latency (see evaluate.evaluate_index).
        scann_assets: ScaNN searcher state (None when exact).
        partitions: leaves of the portable searcher (None unless partitioned).
    """

    item_ids: np.ndarray
    embeddings: np.ndarray
    params: IndexParams
    metrics: dict = dataclasses.field(default_factory=dict)
    scann_assets: dict[str, np.ndarray] | None = None
    partitions: Partitions | None = None


def build_index(item_ids, embeddings: np.ndarray, params: IndexParams, seed: int = 0) -> Index:
    """Builds the ScaNN state and the portable partitions an index's params ask for.

    Args:
        item_ids: [N] item ids (str or utf-8 bytes), unique.
        embeddings: [N, D] float32, finite.
        params: from params.choose_params(N, config).
        seed: k-means seed of the portable partitions.
    """
    ids = np.array([i.decode() if isinstance(i, bytes) else str(i) for i in item_ids])
    embeddings = np.ascontiguousarray(embeddings, np.float32)
    _validate(ids, embeddings, params)
    metrics, assets, partitions = {}, None, None
    if not params.exact:
        start = time.perf_counter()
        assets = scann_assets(embeddings, params)
        metrics["scann_build_s"] = time.perf_counter() - start
    if params.portable_partitioned:
        start = time.perf_counter()
        partitions = build_partitions(embeddings, params.num_leaves, seed)
        metrics["partitions_build_s"] = time.perf_counter() - start
    return Index(ids, embeddings, params, metrics, assets, partitions)


def _validate(ids: np.ndarray, embeddings: np.ndarray, params: IndexParams) -> None:
    if embeddings.ndim != 2 or len(embeddings) != len(ids):
        raise ValueError(f"embeddings {embeddings.shape} do not match {len(ids)} item ids")
    if len(ids) != params.num_items:
        raise ValueError(f"params are for {params.num_items} items, the catalog has {len(ids)}")
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("item ids are not unique")
    bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
    if len(bad):
        raise ValueError(f"non-finite embeddings for items {ids[bad[:5]].tolist()}")


def _write_npy(path: str, array: np.ndarray) -> None:
    with tf.io.gfile.GFile(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def _write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())


def _read(path: str):
    with tf.io.gfile.GFile(path, "rb") as f:
        return np.load(io.BytesIO(f.read()), allow_pickle=False)


def _encode_assets(assets: dict, embeddings: np.ndarray) -> dict[str, np.ndarray]:
    """Strings as uint8 ('S' arrays drop trailing NULs); omits a dataset equal to embeddings."""
    out = {}
    for name, value in assets.items():
        if name in _STRINGS:
            out[name] = np.frombuffer(value.reshape(-1)[0], np.uint8)
        elif name != "dataset" or not np.array_equal(value, embeddings):
            out[name] = value
    return out


def _decode_assets(stored, embeddings: np.ndarray) -> dict[str, np.ndarray]:
    out = {n: stored[n] for n in stored.files}
    for name in _STRINGS:
        out[name] = np.array([out[name].tobytes()], dtype=object)
    out.setdefault("dataset", embeddings)
    return out


def save_index(index: Index, uri: str) -> str:
    """Writes the index under `<uri>/index` (atomically: temp dir, then rename); returns it."""
    final = os.path.join(uri, INDEX_DIR)
    if tf.io.gfile.exists(final):
        raise FileExistsError(f"{final} exists; an index is written once")
    tmp = f"{final}.tmp-{os.getpid()}"
    if tf.io.gfile.exists(tmp):
        tf.io.gfile.rmtree(tmp)
    tf.io.gfile.makedirs(tmp)
    _write_npy(os.path.join(tmp, "item_ids.npy"), index.item_ids.astype(str))
    _write_npy(os.path.join(tmp, "embeddings.npy"), index.embeddings)
    if index.scann_assets is not None:
        _write_npz(
            os.path.join(tmp, "scann.npz"), _encode_assets(index.scann_assets, index.embeddings)
        )
    if index.partitions is not None:
        parts = dataclasses.asdict(index.partitions)
        _write_npz(os.path.join(tmp, "partitions.npz"), parts)
    for name, value in ((PARAMS_FILE, index.params.to_dict()), (METRICS_FILE, index.metrics)):
        with tf.io.gfile.GFile(os.path.join(tmp, name), "w") as f:
            json.dump(value, f, indent=2)
    tf.io.gfile.rename(tmp, final)
    return final


def index_dir(uri: str) -> str:
    """The index directory of an ItemIndex artifact uri (or the directory itself)."""
    for path in (os.path.join(uri, INDEX_DIR), uri):
        if tf.io.gfile.exists(os.path.join(path, PARAMS_FILE)):
            return path
    raise FileNotFoundError(f"no index at {uri} (no {INDEX_DIR}/{PARAMS_FILE})")


def load_index(uri: str) -> Index:
    """Reads an index written by save_index (the ItemIndex artifact uri, or its index dir)."""
    path = index_dir(uri)
    with tf.io.gfile.GFile(os.path.join(path, PARAMS_FILE)) as f:
        params = IndexParams.from_dict(json.load(f))
    with tf.io.gfile.GFile(os.path.join(path, METRICS_FILE)) as f:
        metrics = json.load(f)
    item_ids = _read(os.path.join(path, "item_ids.npy"))
    embeddings = _read(os.path.join(path, "embeddings.npy"))
    assets = partitions = None
    if tf.io.gfile.exists(os.path.join(path, "scann.npz")):
        assets = _decode_assets(_read(os.path.join(path, "scann.npz")), embeddings)
    if tf.io.gfile.exists(os.path.join(path, "partitions.npz")):
        stored = _read(os.path.join(path, "partitions.npz"))
        partitions = Partitions(
            int(stored["num_leaves"]), stored["centroids"], stored["leaf_items"]
        )
    index = Index(item_ids, embeddings, params, metrics, assets, partitions)
    _validate(item_ids, embeddings, params)
    return index


def scann_searcher(index: Index, k: int) -> Searcher:
    """The ScaNN-ops searcher of an index (brute force for an exact index)."""
    if index.params.exact:
        return ExactSearcher(index.embeddings, k)
    if index.scann_assets is None:
        raise ValueError("the index has no ScaNN state (build it with build_index)")
    return ScannSearcher(index.scann_assets, index.params, k)


def portable_searcher(index: Index, k: int) -> Searcher:
    """The stock-op searcher: exact, or partitioned when params.portable_partitioned."""
    if not index.params.portable_partitioned:
        return ExactSearcher(index.embeddings, k)
    if index.partitions is None:
        raise ValueError("the index has no partitions (build it with build_index)")
    leaves = index.partitions.leaves_to_search(index.params.num_leaves_to_search, k)
    return PartitionedSearcher(index.embeddings, index.partitions, leaves, k)
