"""Recall, the blessing decision and the measurement of an index (hand-derived)."""

import numpy as np
import pytest

from components.scann_index_builder import evaluate as E
from models.search.params import IndexConfig


def test_recall_at_k_by_hand():
    approx = np.array([[1, 2, 3], [4, 5, 6]])
    exact = np.array([[1, 2, 9], [6, 5, 4]])
    # query 0: 2 of 3; query 1: 3 of 3 (order does not matter) -> (2/3 + 1) / 2 = 5/6
    assert E.recall_at_k(approx, exact) == pytest.approx(5 / 6)
    assert np.isnan(E.recall_at_k(approx[:0], exact[:0]))


def _metrics(recall, portable, queries=100):
    return {"k": 10, "num_queries": queries, "recall@10": recall, "portable_recall@10": portable}


def test_blessing_around_the_threshold():
    blessed, reasons = E.decide(_metrics(0.95, 0.97), 0.95)
    assert blessed
    assert reasons == [
        "recall@10 = 0.9500 >= threshold 0.95",
        "portable_recall@10 = 0.9700 >= threshold 0.95",
    ]
    blessed, reasons = E.decide(_metrics(0.9499, 1.0), 0.95)
    assert not blessed and reasons[0] == "recall@10 = 0.9499 < threshold 0.95"
    assert not E.decide(_metrics(1.0, 0.94), 0.95)[0]
    blessed, reasons = E.decide(_metrics(float("nan"), float("nan"), queries=0), 0.95)
    assert not blessed and "no eval queries" in reasons[0]


def _clustered(n=2000, dim=8, seed=7):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    items = centres[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, dim))
    queries = centres[rng.integers(0, 20, 60)] + 0.5 * rng.normal(size=(60, dim))
    return items.astype(np.float32), queries.astype(np.float32)


def test_small_catalog_is_exact_and_blessed_with_a_note():
    items, queries = _clustered()
    index = E.build_and_measure([str(i) for i in range(len(items))], items, queries, IndexConfig())
    m = index.metrics
    assert m["exact_fallback"] and m["search"] == "2000 items < exact_below = 10000: exact search"
    assert m["recall@10"] == 1.0 and m["portable_recall@10"] == 1.0 and m["blessed"]
    assert set(m["latency"]) == set(E.SEARCHERS)
    assert {"p50_ms", "p99_ms", "batched_qps"} <= set(m["latency"]["scann"])
    assert m["num_queries"] == 60 and m["num_items"] == 2000


def test_a_too_coarse_index_is_not_blessed():
    items, queries = _clustered()
    config = IndexConfig(
        exact_below=0, num_leaves=40, num_leaves_to_search=1, recall_threshold=0.99
    )
    index = E.build_and_measure([str(i) for i in range(len(items))], items, queries, config)
    m = index.metrics
    assert not m["exact_fallback"] and m["params"]["num_leaves_to_search"] == 1
    assert m["recall@10"] < 0.99 and not m["blessed"]
    assert any(r.startswith("recall@10 = ") and "< threshold 0.99" in r for r in m["reasons"])
