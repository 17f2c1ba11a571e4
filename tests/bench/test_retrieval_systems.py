"""B1 plumbing on hand-made data: metrics from top lists, item-id systems, the cuts."""

import os

import numpy as np
import pytest
import tensorflow as tf

from bench import retrieval_data as D
from bench import retrieval_systems as S
from components.retrieval_evaluator import metrics as M
from models.common import examples as X
from schemas import features as F

# user -> (timestamp, item, label, split) in the pipeline's order.
EVENTS = {
    "u1": [(1, "a", 1, "train"), (2, "b", 0, "train"), (3, "c", 1, "train"), (4, "d", 1, "eval")],
    "u2": [(1, "b", 0, "train"), (2, "a", 1, "eval")],
    "u3": [(5, "c", 0, "train")],  # no positive: never a query, every event trains
}
ITEMS = ["a", "b", "c", "d"]
INDEX = {item: i for i, item in enumerate(ITEMS)}


def test_evaluate_top_by_hand():
    # Target ranks 0, 2 and a miss; top-10 lists cover items {0, 1, 2, 3}.
    top = np.array([[3, 0, 1], [0, 1, 3], [2, 0, 1]])
    out = S.evaluate_top(top, np.array([3, 3, 4]), num_items=5)
    m = out["metrics"]
    assert m["hr@10"] == pytest.approx(2 / 3) and m["hr@100"] == pytest.approx(2 / 3)
    assert m["ndcg@10"] == pytest.approx((1.0 + 1.0 / np.log2(4)) / 3)
    assert m["coverage@10"] == pytest.approx(4 / 5) and m["num_queries"] == 3
    assert out["recall_curve"] == pytest.approx([1 / 3, 1 / 3, 2 / 3])


def test_evaluate_top_agrees_with_rank_targets():
    rng = np.random.default_rng(1)
    query, items = rng.normal(size=(20, 4)), rng.normal(size=(150, 4))
    targets = rng.integers(0, 150, 20)
    exclude = [rng.integers(0, 150, 5) for _ in range(20)]
    ranking = M.rank_targets(query, items, targets, exclude)
    assert S.evaluate_top(ranking.top, targets, 150)["metrics"] == M.compute_metrics(ranking)


def test_from_item_ids_maps_ids_and_leaves_unknown_slots_empty():
    class FakeSplit:
        item_ids = ITEMS

    system = S.from_item_ids(lambda split: ([[b"d", "a", "zzz"], ["b"]], {"k": 1}))
    top, extras = system(FakeSplit())
    assert top.shape == (2, S.TOP_K) and extras == {"k": 1}
    assert list(top[0, :4]) == [3, 0, -1, -1] and list(top[1, :2]) == [1, -1]
    m = S.evaluate_top(top, np.array([0, 1]), 4)["metrics"]
    assert m["hr@10"] == 1.0 and m["coverage@10"] == pytest.approx(3 / 4)


def test_interactions_before_the_test_and_validation_targets():
    test = D.target_cutoffs(EVENTS)
    assert test == {"u1": (4, "d"), "u2": (2, "a")}
    val = D.validation_cutoffs(EVENTS)
    assert val == {"u1": (3, "c")}  # u2 has no positive training event
    users, rows, cols = D.interactions_before(EVENTS, test, INDEX, positives_only=False)
    assert users == ["u1", "u2", "u3"]
    assert sorted(zip(rows, cols, strict=True)) == [(0, 0), (0, 1), (0, 2), (1, 1), (2, 2)]
    _, rows, cols = D.interactions_before(EVENTS, test, INDEX, positives_only=True)
    assert sorted(zip(rows, cols, strict=True)) == [(0, 0), (0, 2)]
    _, rows, cols = D.interactions_before(EVENTS, val, INDEX, positives_only=False)
    # u1 keeps a and b (before c); u2 has no validation target: b and a both train.
    assert sorted(zip(rows, cols, strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2)]


def _example(user, ts, item, label, event=None):
    f = {
        F.USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
        F.ITEM_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[item.encode()])),
        F.TIMESTAMP: tf.train.Feature(int64_list=tf.train.Int64List(value=[ts])),
        F.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    if event is not None:
        f[F.EVENT] = tf.train.Feature(int64_list=tf.train.Int64List(value=[event]))
    return tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString()


def test_cut_validation_keeps_only_events_before_each_users_last_positive(tmp_path):
    rows = [
        ("u1", 1, "a", 1), ("u1", 2, "b", 0), ("u1", 3, "c", 1),
        ("u1", 3, "x", 0),  # a label-0 event at the target's time, later id: dropped
        ("u1", 3, "0", 0),  # same time, earlier id: before the target in the pipeline's order
        ("u2", 1, "b", 0),  # no positive: stays for training
        ("u1", 1, "n", 0, 0),  # a sampled negative of an earlier event: training
        ("u1", 3, "m", 0, 0), ("u1", 3, "0a", 0, 0),  # the target's sampled negatives
        ("u1", 2, "b2", 0, 1),  # a logged label-0 event (F.EVENT 1): training
    ]  # fmt: skip
    path = os.path.join(tmp_path, "Split-train", "data.gz")
    D._write(path, [_example(*r) for r in rows])
    train, evals, negatives = D.cut_validation(os.path.join(tmp_path, "Split-train", "*"))
    parse = tf.train.Example.FromString

    def expect(*indices):
        return [parse(_example(*rows[i])) for i in indices]

    assert [parse(r) for r in train] == expect(0, 1, 4, 5, 6, 9)
    assert [parse(r) for r in evals] == expect(2)
    # The ranker's validation negatives: never trained on, whatever their id's order.
    assert [parse(r) for r in negatives] == expect(7, 8)


def test_split_rejects_queries_whose_targets_disagree_with_the_events():
    data = X.EvalData(
        {F.USER_ID: np.array([b"u1"], object)}, np.array([2]), [np.array([], np.int64)], {}
    )
    with pytest.raises(ValueError, match="u1's target disagrees"):
        S.Split("test", data, ["u1"], ITEMS, EVENTS, D.target_cutoffs(EVENTS), "")
    S.Split("validation", data, ["u1"], ITEMS, EVENTS, D.validation_cutoffs(EVENTS), "")


def test_seed_mean_averages_each_metric_and_reports_the_spread_by_hand():
    from bench.retrieval import seed_mean

    runs = [
        {"hr@10": 0.2, "ndcg@10": 0.1, "hr@100": 0.5, "recall_curve": [0.1, 0.2], "wall_s": 3.0},
        {"hr@10": 0.4, "ndcg@10": 0.3, "hr@100": 0.7, "recall_curve": [0.3, 0.4], "wall_s": 5.0},
    ]
    row = seed_mean(runs, [7, 9])
    assert row["hr@10"] == pytest.approx(0.3) and row["ndcg@10"] == pytest.approx(0.2)
    assert row["hr@10_std"] == pytest.approx(0.1)  # population std of {0.2, 0.4}
    assert row["ndcg@10_std"] == pytest.approx(0.1)
    assert row["recall_curve"] == pytest.approx([0.2, 0.3])
    assert [s["seed"] for s in row["seeds"]] == [7, 9]
    assert row["per_seed_extras"] == [{"wall_s": 3.0}, {"wall_s": 5.0}]


def test_verdict_compares_with_the_stronger_ease_per_metric():
    from bench.retrieval_report import stronger_ease, verdict

    rows = {
        "ease_all": {"hr@10": 0.20, "ndcg@10": 0.08},
        "ease_positive": {"hr@10": 0.18, "ndcg@10": 0.10},
    }
    assert stronger_ease(rows) == {"hr@10": 0.20, "ndcg@10": 0.10}
    ok, ratios = verdict({"hr@10": 0.221, "ndcg@10": 0.111}, rows, 1.10)
    assert ok and ratios == pytest.approx({"hr@10": 1.105, "ndcg@10": 1.11})
    ok, _ = verdict({"hr@10": 0.23, "ndcg@10": 0.109}, rows, 1.10)
    assert not ok  # NDCG@10 short of 1.10 x the positives-only EASE
