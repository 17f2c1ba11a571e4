"""B3 recall-vs-latency sweeps and the 1M target check.

A sweep walks one system's main knob up its ladder (Faiss nprobe / efSearch, hnswlib ef,
ScaNN leaves_to_search) and measures, at each value, recall@10 over every query (batched)
and the single-query p50 over the first `timed` queries. `pick_setting`
then takes the cheapest value reaching recall@10 >= 0.95.
"""

from __future__ import annotations

import time

import numpy as np

TARGET_RECALL = 0.95
PAST_TARGET = 3  # sweep points measured beyond the first that reaches the target
TF_OP_BOUND, NATIVE_BOUND = 1.5, 1.0  # the target: TF op <= 1.5x, ScaNN's own <= 1x the peer


def pick_setting(sweep: list[dict], target: float = TARGET_RECALL) -> dict:
    """The cheapest sweep point (knob values ascending) whose recall@10 >= target, else the
    most accurate point, marked `"reached": False`.

    Args:
        sweep: [{"knob": value, "recall@10": r, ...}] in the order of the knob's ladder.
    """
    if not sweep:
        raise ValueError("empty sweep: no knob value was measured")
    for point in sweep:
        if point["recall@10"] >= target:
            return {**point, "reached": True}
    return {**max(sweep, key=lambda p: p["recall@10"]), "reached": False}


def single_input(searcher, row: np.ndarray):
    """One query [1, dim] as the searcher takes it: numpy for native ones, else a tf tensor."""
    if getattr(searcher, "numpy_input", False):
        return row[None, :]
    import tensorflow as tf

    return tf.constant(row[None, :])


def single_times(searcher, queries: np.ndarray) -> list[float]:
    """Seconds of each one-query search over queries [Q, dim] (after one warm-up call)."""
    np.asarray(searcher.search(single_input(searcher, queries[0]))[0])
    times = []
    for row in queries:
        query = single_input(searcher, row)
        start = time.perf_counter()
        np.asarray(searcher.search(query)[0])
        times.append(time.perf_counter() - start)
    return times


def sweep(at, values, queries: np.ndarray, exact: np.ndarray, timed: int = 200) -> list[dict]:
    """Recall@10 and single-query p50/p99 at each knob value.

    Args:
        at: value -> a searcher configured with it (`search(queries [B, dim])`).
        values: the knob's ladder, ascending (cost grows with the value).
        queries: [Q, dim] float32.
        exact: [Q, k] the exact top-k rows of every query.
        timed: queries timed one by one at each value.

    Stops PAST_TARGET points after the first reaching TARGET_RECALL, or at recall 1.
    """
    from components.scann_index_builder.evaluate import recall_at_k
    from models.search.searchers import search_all

    points, past = [], 0
    for value in values:
        searcher = at(value)
        recall = recall_at_k(search_all(searcher, queries, 250), exact)
        times = single_times(searcher, queries[:timed])
        points.append(
            {
                "knob": value,
                "recall@10": recall,
                "p50_ms": 1e3 * float(np.percentile(times, 50)),
                "p99_ms": 1e3 * float(np.percentile(times, 99)),
            }
        )
        print(f"      {value:>5}: recall@10 {recall:.4f}, p50 {points[-1]['p50_ms']:.3f} ms")
        past += recall >= TARGET_RECALL
        if past > PAST_TARGET or recall >= 1.0:
            break
    return points


def target_check(searchers: dict, peers: list[str], served: str, native: str) -> dict:
    """The B3 target at one N: among `peers` with recall@10 >= 0.95, the fastest p50;
    `served` (the TF-op path) within TF_OP_BOUND x it, `native` (ScaNN's own) within
    NATIVE_BOUND x, each also at recall@10 >= 0.95.

    Args:
        searchers: name -> {"recall@10", "p50_ms", ...} measured side by side.
    """
    qualified = [p for p in peers if p in searchers and searchers[p]["recall@10"] >= TARGET_RECALL]
    if not qualified:
        return {"fastest_peer": None, "met": False, "why": "no peer reached recall@10 0.95"}
    fastest = min(qualified, key=lambda p: searchers[p]["p50_ms"])
    out = {"fastest_peer": fastest, "peer_p50_ms": searchers[fastest]["p50_ms"]}
    for role, name, bound in (("tf_op", served, TF_OP_BOUND), ("native", native, NATIVE_BOUND)):
        s = searchers[name]
        ratio = s["p50_ms"] / out["peer_p50_ms"]
        out[f"{role}_searcher"] = name
        out[f"{role}_ratio"] = ratio
        out[f"{role}_met"] = bool(ratio <= bound and s["recall@10"] >= TARGET_RECALL)
    out["met"] = out["tf_op_met"] and out["native_met"]
    return out
