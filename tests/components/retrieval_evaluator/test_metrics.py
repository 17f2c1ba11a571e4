"""RetrievalEvaluator's pure logic: ranking, metrics and the blessing decision (no TFX).

With item embeddings = the identity matrix, a query embedding *is* its row of
scores over the catalog, so rankings can be written down directly.
"""

import numpy as np
import pytest

from components.retrieval_evaluator import metrics as M

V = 15
ITEMS = np.eye(V, dtype=np.float32)


def _scores_from_order(order):
    """Scores [V] such that items rank in `order` (best first)."""
    scores = np.zeros(V, np.float32)
    scores[list(order)] = np.arange(V, 0, -1)
    return scores


DESC = list(range(V))  # item 0 best, item 14 worst
Q2_ORDER = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 14, 12, 13]
QUERIES = np.stack([_scores_from_order(o) for o in (DESC, DESC, Q2_ORDER, DESC)])
# targets: q0 item 0 (rank 0); q1 item 2 (rank 2); q2 item 14 (12th position -> rank 12);
# q3 an item missing from the catalog (-1) -> a miss.
TARGETS = np.array([0, 2, 14, -1])
NO_EXCLUSION = [[], [], [], []]


def _ranking(queries=QUERIES, targets=TARGETS, exclude=NO_EXCLUSION, **kwargs):
    return M.rank_targets(queries, ITEMS, targets, exclude, **kwargs)


def test_ranks_of_a_hand_made_ranking():
    ranking = _ranking()
    np.testing.assert_array_equal(ranking.ranks, [0, 2, 12, M.MISS])
    np.testing.assert_array_equal(ranking.top[0, :10], range(10))
    np.testing.assert_array_equal(ranking.top[2, :10], Q2_ORDER[:10])
    # batching does not change anything
    np.testing.assert_array_equal(_ranking(batch_size=1).ranks, ranking.ranks)


def test_metrics_of_a_hand_made_ranking():
    m = M.compute_metrics(_ranking())
    # ranks [0, 2, 12, miss]
    # HR@10 = 2/4 = 0.5; NDCG@10 = (1/log2(2) + 1/log2(4)) / 4 = (1 + 0.5) / 4 = 0.375
    assert m["hr@10"] == pytest.approx(0.5)
    assert m["ndcg@10"] == pytest.approx(0.375)
    # HR@50 = HR@100 = 3/4; NDCG@50 = (1 + 0.5 + 1/log2(14)) / 4 = (1.5 + 0.262650) / 4 = 0.440662
    assert m["hr@50"] == m["hr@100"] == pytest.approx(0.75)
    assert m["ndcg@50"] == m["ndcg@100"] == pytest.approx(0.440662, abs=1e-6)
    # top-10 lists: items 0..9 (q0, q1, q3) and 2..11 (q2): union 0..11 = 12 of 15 items
    assert m["coverage@10"] == pytest.approx(12 / 15)
    assert m["num_queries"] == 4


def test_recall_curve():
    # ranks [0, 2, 12, miss]: R@1 = R@2 = 1/4, R@3..R@12 = 2/4, R@13..R@100 = 3/4
    curve = M.recall_curve(_ranking().ranks)
    assert len(curve) == 100
    assert curve[0] == curve[1] == 0.25
    assert curve[2] == curve[11] == 0.5
    assert curve[12] == curve[99] == 0.75


def test_history_exclusion_removes_earlier_items_but_never_the_target():
    # item i scores 15 - i; target item 5 ranks 5. Excluding items 0, 1, 2 (above it),
    # 9 (below it) and 5 itself: rank 5 - 3 = 2; the target stays rankable.
    query = _scores_from_order(DESC)[None, :]
    plain = M.rank_targets(query, ITEMS, np.array([5]), [[]])
    assert plain.ranks[0] == 5
    ranking = M.rank_targets(query, ITEMS, np.array([5]), [[0, 1, 2, 5, 9]])
    assert ranking.ranks[0] == 2
    np.testing.assert_array_equal(ranking.top[0, :4], [3, 4, 5, 6])


def test_ties_count_against_the_target_and_nan_is_a_miss():
    # A constant model: all 15 scores equal; target 3 ranks behind the 14 others.
    ranking = M.rank_targets(np.zeros((1, V)), ITEMS, np.array([3]), [[]])
    assert ranking.ranks[0] == V - 1
    nan = M.rank_targets(np.full((1, V), np.nan), ITEMS, np.array([3]), [[]])
    assert nan.ranks[0] == M.MISS
    assert M.compute_metrics(nan)["hr@100"] == 0.0


def test_blessing_config_validates_and_maps_metric_names():
    assert M.BlessingConfig(min_hr_at_10=0.2).minimum("hr@10") == 0.2
    with pytest.raises(ValueError, match="min_ndcg_at_10"):
        M.BlessingConfig(min_ndcg_at_10=1.5)


METRICS = {
    "hr@10": 0.5,
    "ndcg@10": 0.375,
    "hr@50": 0.75,
    "ndcg@50": 0.44,
    "hr@100": 0.75,
    "ndcg@100": 0.44,
    "coverage@10": 0.8,
    "num_queries": 4,
}


def test_decide_absolute_thresholds():
    blessed, reasons = M.decide(METRICS, None, M.BlessingConfig(min_hr_at_10=0.4))
    assert blessed and reasons == ["every metric meets its threshold"]
    blessed, reasons = M.decide(METRICS, None, M.BlessingConfig(min_hr_at_10=0.6))
    assert not blessed
    assert reasons == ["hr@10 = 0.5000 is below the threshold 0.6000"]
    blessed, reasons = M.decide({**METRICS, "num_queries": 0}, None, M.BlessingConfig())
    assert not blessed and "no query" in reasons[0]


def test_decide_against_the_baseline_with_a_relative_tolerance():
    cfg = M.BlessingConfig(max_regression=0.05)
    # baseline hr@10 0.52: floor 0.52 * 0.95 = 0.494 <= 0.5 -> still blessed
    blessed, reasons = M.decide(METRICS, {**METRICS, "hr@10": 0.52}, cfg)
    assert blessed and "baseline" in reasons[0]
    # baseline hr@10 0.55: floor 0.5225 > 0.5 -> not blessed, one reason
    blessed, reasons = M.decide(METRICS, {**METRICS, "hr@10": 0.55}, cfg)
    assert not blessed and len(reasons) == 1
    assert reasons[0].startswith("hr@10 = 0.5000 regressed from the baseline's 0.5500")


def test_a_random_embedding_model_is_not_blessed():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(200, 16)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)  # a query equal to its target wins
    targets = rng.integers(0, 200, size=100)
    exclude = [[] for _ in targets]
    good = M.compute_metrics(M.rank_targets(items[targets], items, targets, exclude))
    broken_queries = rng.normal(size=(100, 16)).astype(np.float32)
    broken = M.compute_metrics(M.rank_targets(broken_queries, items, targets, exclude))
    assert good["hr@10"] == 1.0 and broken["hr@10"] < 0.3
    cfg = M.BlessingConfig(min_hr_at_10=0.2)
    assert not M.decide(broken, None, cfg)[0]  # fails the absolute threshold
    assert not M.decide(broken, good, M.BlessingConfig())[0]  # regresses from the baseline
    assert M.decide(good, None, cfg)[0]
