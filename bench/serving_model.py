"""B4 helper: the combined serving model with a catalog grown to N items.

Takes one pipeline run's trained retrieval and ranking models (newest artifacts), its
item index (real item embeddings) and its catalog, grows the catalog to N items with
synthetic ones (`bench-000123`: genre and year sampled from the real catalog, embedding =
a random real item's embedding plus noise, rescaled to that item's norm, so the geometry
stays realistic), builds the index the ScannIndexBuilder would build for N items and
exports both serving variants:

    <base>/<N>/recommender/1           portable (stock TF ops)
    <base>/<N>/recommender_scann/1     ScaNN ops
    <base>/<N>/cost.json               bytes searched and ranker FLOPs per request

An existing export is reused. Also estimates the work per request (see `request_cost`).
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil

import numpy as np

from schemas import features as F
from schemas.serving import VARIANTS, served_model_name

BENCH_PREFIX = "bench-"
NOISE = 0.3  # noise norm relative to the parent embedding's norm
VARIANT_DIRS = {v: served_model_name("recommender", v) for v in VARIANTS}
COST_FILE = "cost.json"
# Bumped when the exported graph changes, so that a cached export is rebuilt, not measured.
# 2: searchers without in-graph chunking, history filter on catalog rows, max_batch.
EXPORT_FORMAT = 2
CATALOG_COLUMNS = (F.ITEM_ID, F.TITLE, F.PRIMARY_GENRE, F.YEAR)
K, CANDIDATES = 10, 100


def newest_artifact(pipeline_root: str, component: str, output: str) -> str:
    """`<root>/<component>/<output>/<largest id>`; FileNotFoundError names what is missing."""
    ids = [p for p in glob.glob(os.path.join(pipeline_root, component, output, "*"))]
    ids = [p for p in ids if os.path.basename(p).isdigit()]
    if not ids:
        raise FileNotFoundError(
            f"no {component}/{output} artifact under {pipeline_root}; run the pipeline first"
        )
    return max(ids, key=lambda p: int(os.path.basename(p)))


def grow_catalog(catalog: dict, embeddings: np.ndarray, n: int, seed: int = 0):
    """The real catalog plus n - V synthetic items.

    Args:
        catalog: item_id, title, genre, year: arrays [V] aligned with `embeddings`.
        embeddings: [V, D] float32 real item embeddings.
        n: the catalog size wanted (>= V).
        seed: of the synthetic items.

    Returns:
        (catalog arrays [n], embeddings [n, D] float32); real items first, unchanged.
    """
    real = len(catalog[F.ITEM_ID])
    if len(embeddings) != real:
        raise ValueError(f"{len(embeddings)} embeddings for {real} catalog items")
    if n < real:
        raise ValueError(f"n = {n} is below the real catalog size {real}")
    extra = n - real
    rng = np.random.default_rng(seed)
    ids = np.array([f"{BENCH_PREFIX}{i:06d}" for i in range(extra)], dtype=object)
    clash = set(ids.tolist()) & {str(i) for i in catalog[F.ITEM_ID]}
    if clash:
        raise ValueError(f"synthetic ids clash with real ones, e.g. {sorted(clash)[:3]}")
    grown = {
        F.ITEM_ID: ids,
        F.TITLE: np.array([f"Bench item {i}" for i in range(extra)], dtype=object),
        F.PRIMARY_GENRE: np.asarray(catalog[F.PRIMARY_GENRE], object)[
            rng.integers(real, size=extra)
        ],
        F.YEAR: np.asarray(catalog[F.YEAR], np.int64)[rng.integers(real, size=extra)],
    }
    out = {
        key: np.concatenate([np.asarray(catalog[key], values.dtype), values])
        for key, values in grown.items()
    }
    return out, np.concatenate([embeddings, noisy_copies(embeddings, extra, rng)])


def noisy_copies(embeddings: np.ndarray, count: int, rng) -> np.ndarray:
    """[count, D]: random rows plus isotropic noise of NOISE x their norm, rescaled to it."""
    parents = embeddings[rng.integers(len(embeddings), size=count)].astype(np.float32)
    norms = np.linalg.norm(parents, axis=1, keepdims=True)
    noise = rng.standard_normal(parents.shape).astype(np.float32)
    noise *= NOISE * norms / math.sqrt(parents.shape[1])
    rows = parents + noise
    rows *= norms / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return rows.astype(np.float32)


def search_bytes(index, depth: int, variant: str) -> int:
    """Bytes of float32 item vectors the searcher reads per query (leaves or all N x D)."""
    from models.search import index as search

    dim = index.embeddings.shape[1]
    if variant == "portable":
        searcher = search.portable_searcher(index, depth)
        if isinstance(searcher, search.PartitionedSearcher):
            parts = index.partitions
            rows = len(parts.centroids) + searcher.leaves * parts.leaf_items.shape[1]
            return 4 * rows * dim
        return 4 * len(index.embeddings) * dim
    if index.params.exact:
        return 4 * len(index.embeddings) * dim
    # ScaNN: centroids in float, searched leaves as 4-bit AH codes, reordering in float.
    leaf = len(index.embeddings) / index.params.num_leaves
    codes = index.params.num_leaves_to_search * leaf * dim / index.params.dimensions_per_block / 2
    return int(4 * index.params.num_leaves * dim + codes + 4 * index.params.reorder * dim)


def ranker_flops(ranking_dir: str, history: int = F.HISTORY_LENGTH) -> int:
    """Multiply-adds x 2 of the ranker's dense kernels for CANDIDATES candidates.

    Kernels under an `attention` scope run once per (candidate, history item) pair; the
    other 2-D `kernel` variables once per candidate. Embedding tables are look-ups (0).
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(ranking_dir)
    flops = 0
    for var in getattr(loaded, "model_variables", None) or loaded.variables:
        name = var.name.lower()
        if "kernel" not in name or len(var.shape) != 2:
            continue
        pairs = history if "attention" in name else 1
        flops += 2 * CANDIDATES * pairs * int(var.shape[0]) * int(var.shape[1])
    return flops


def pipeline_inputs(pipeline_root: str) -> dict:
    """Newest retrieval/ranking SavedModels, index dir and catalog split dir of a run."""
    serving = "Format-Serving"
    return {
        "retrieval": os.path.join(
            newest_artifact(pipeline_root, "retrieval_trainer", "model"), serving
        ),
        "ranking": os.path.join(
            newest_artifact(pipeline_root, "ranking_trainer", "model"), serving
        ),
        "index": newest_artifact(pipeline_root, "ScannIndexBuilder", "index"),
        "catalog": os.path.join(
            newest_artifact(pipeline_root, "BehaviorSequenceGen", "catalog"), "Split-catalog"
        ),
    }


def read_real_catalog(inputs: dict):
    """(catalog arrays [V] in index order, embeddings [V, D]) of the run's real items."""
    from models.common.examples import read_columns
    from models.search.index import load_index
    from models.serving.export import catalog_in_index_order

    columns = read_columns(
        os.path.join(inputs["catalog"], "*"), F.CATALOG_FEATURES, CATALOG_COLUMNS
    )
    text = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
    catalog = {k: [text(v) for v in values] for k, values in columns.items()}
    index = load_index(inputs["index"])
    return catalog_in_index_order(catalog, index.item_ids), index.embeddings


def model_dirs(base: str, n: int) -> dict[str, str]:
    """variant -> `<base>/<n>/<model name>` (the server's --model-base-path)."""
    return {v: os.path.join(base, str(n), d) for v, d in VARIANT_DIRS.items()}


def build_models(base: str, n: int, pipeline_root: str, seed: int = 0) -> dict:
    """Exports both variants for a catalog of n items (reused when present).

    Returns:
        {"dirs": variant -> model base path, "cost": per-request cost estimates}.
    """
    from models.search.index import build_index
    from models.search.params import choose_params
    from models.serving.export import export_variant, search_depth

    dirs = model_dirs(base, n)
    cost_path = os.path.join(base, str(n), COST_FILE)
    done = all(os.path.isfile(os.path.join(d, "1", "saved_model.pb")) for d in dirs.values())
    cached = _read_json(cost_path) if done else None
    if cached and cached.get("export_format") == EXPORT_FORMAT:
        print(f"  reusing the {n}-item models under {os.path.join(base, str(n))}", flush=True)
        return {"dirs": dirs, "cost": cached}
    for model_dir in dirs.values():  # stale or partial: export again
        shutil.rmtree(model_dir, ignore_errors=True)
    inputs = pipeline_inputs(pipeline_root)
    catalog, embeddings = read_real_catalog(inputs)
    catalog, embeddings = grow_catalog(catalog, embeddings, n, seed)
    params = choose_params(n)
    print(f"  {n} items: building the index ({params})", flush=True)
    index = build_index(catalog[F.ITEM_ID], embeddings, params)
    depth = search_depth(CANDIDATES, n)
    cost = {
        "export_format": EXPORT_FORMAT,
        "params": params.to_dict(),
        "dim": int(embeddings.shape[1]),
        "search_depth": depth,
        "ranker_flops": ranker_flops(inputs["ranking"]),
        "sources": inputs,
    }
    for variant, model_dir in dirs.items():
        cost[f"search_bytes_{variant}"] = search_bytes(index, depth, variant)
        target = os.path.join(model_dir, "1")
        if not os.path.isfile(os.path.join(target, "saved_model.pb")):
            print(f"  {n} items: exporting {variant} to {target}", flush=True)
            export_variant(
                inputs["retrieval"],
                inputs["ranking"],
                index,
                catalog,
                target,
                variant,
                K,
                CANDIDATES,
                info={"bench": "serving", "real_items": int(np.sum(~_is_bench(catalog)))},
            )
    tmp = f"{cost_path}.tmp"
    with open(tmp, "w") as f:
        json.dump(cost, f, indent=2)
    os.replace(tmp, cost_path)
    return {"dirs": dirs, "cost": cost}


def _read_json(path: str):
    """The JSON in `path`, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_bench(catalog: dict) -> np.ndarray:
    return np.array([str(i).startswith(BENCH_PREFIX) for i in catalog[F.ITEM_ID]])
