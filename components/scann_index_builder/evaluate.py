"""Recall of the index's searchers (models/search) against exact search, their latency,
the blessing."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf
from absl import logging

from models.search import index as I
from models.search.index import Index, portable_searcher, scann_searcher
from models.search.params import IndexConfig, choose_params
from models.search.searchers import ExactSearcher, search_all

SEARCHERS = ("scann", "portable", "exact")


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |approx_i & exact_i| / |exact_i| (approx, exact: [Q, k] rows)."""
    if len(exact) == 0:
        return float("nan")
    pairs = zip(approx, exact, strict=True)
    hits = [len(set(a.tolist()) & set(e.tolist())) / len(e) for a, e in pairs]
    return float(np.mean(hits))


def latency(searcher, queries: np.ndarray, single: int = 200, batch_size: int = 256) -> dict:
    """Single-query latency (p50/p99 ms over `single` queries) and batched queries/s.

    Warms up first (the first call traces and, for ScaNN, rebuilds the searcher).
    """
    searcher.search(tf.constant(queries[:1]))
    times = []
    for row in queries[:single]:
        query = tf.constant(row[None, :])
        start = time.perf_counter()
        searcher.search(query)[0].numpy()
        times.append(time.perf_counter() - start)
    batch = tf.constant(queries[: min(batch_size, searcher.max_batch)])
    searcher.search(batch)
    start = time.perf_counter()
    searcher.search(batch)[0].numpy()
    batched = time.perf_counter() - start
    return {
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
        "batched_qps": float(len(batch) / batched),
        "batch_size": int(len(batch)),
    }


def evaluate_index(index: Index, queries: np.ndarray, k: int = 10, timed: int = 200) -> dict:
    """Recall@k of the ScaNN and portable searchers against exact search, and latencies.

    Args:
        index: a built index.
        queries: [Q, D] float32 query embeddings (may be empty: no recall, no latency).
        k: neighbours per query.
        timed: queries timed one by one.
    """
    queries = np.asarray(queries, np.float32)
    searchers = {
        "scann": scann_searcher(index, k),
        "portable": portable_searcher(index, k),
        "exact": ExactSearcher(index.embeddings, k),
    }
    found = {name: search_all(s, queries) for name, s in searchers.items()}
    k = searchers["exact"].k
    metrics = {
        "k": k,
        "num_queries": int(len(queries)),
        "num_items": int(len(index.item_ids)),
        f"recall@{k}": recall_at_k(found["scann"], found["exact"]),
        f"portable_recall@{k}": recall_at_k(found["portable"], found["exact"]),
        "searchers": {n: type(s).__name__ for n, s in searchers.items()},
    }
    if len(queries):
        metrics["latency"] = {n: latency(s, queries, timed) for n, s in searchers.items()}
    return metrics


def decide(metrics: dict, threshold: float) -> tuple[bool, list[str]]:
    """Blessed when both searchers' recall@k >= threshold; returns (blessed, reasons)."""
    k = metrics["k"]
    if not metrics["num_queries"]:
        return False, ["no eval queries: recall cannot be measured"]
    reasons, blessed = [], True
    for key in (f"recall@{k}", f"portable_recall@{k}"):
        ok = metrics[key] >= threshold
        blessed &= ok
        reasons.append(f"{key} = {metrics[key]:.4f} {'>=' if ok else '<'} threshold {threshold}")
    return blessed, reasons


def build_and_measure(item_ids, items, queries, config: IndexConfig) -> I.Index:
    """Chooses the parameters, builds the index, measures it and decides the blessing."""
    start = time.perf_counter()
    params = choose_params(len(items), config)
    scoring = f"AH, reorder {params.reorder}" if params.quantize else "float scoring"
    note = f"ScaNN: {params.num_leaves_to_search} of {params.num_leaves} leaves, {scoring}"
    if params.exact:
        note = f"{len(items)} items < exact_below = {config.exact_below}: exact search"
        logging.info("ScannIndexBuilder: %s (no ScaNN tree)", note)
    index = I.build_index(item_ids, items, params)
    build_s = time.perf_counter() - start
    metrics = evaluate_index(index, queries, config.k)
    blessed, reasons = decide(metrics, config.recall_threshold)
    index.metrics = {
        **metrics,
        **index.metrics,
        "build_s": build_s,
        "exact_fallback": params.exact,
        "search": note,
        "blessed": blessed,
        "reasons": reasons,
        "params": params.to_dict(),
        "config": dataclasses.asdict(config),
    }
    return index
