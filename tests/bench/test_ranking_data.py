"""B2's validation cut (hand-derived) and in-memory batches."""

import numpy as np
import pytest

from bench import ranking_data as D
from schemas import features as F


def test_validation_cut_takes_each_users_last_positive_moment():
    # User a: positives at t=1 and t=3 -> validation = rows at t=3 (the positive, its sampled
    #   negative and a tied negative event); fit = rows before 3; the negative at t=4 (after
    #   the validation target) is dropped.
    # User b: no positive -> every row is fit.  User c: one positive at t=2 -> its rows at 2
    #   are validation, the row at t=1 is fit.
    users = np.array(["a", "a", "a", "a", "a", "a", "b", "b", "c", "c", "c"])
    times = np.array([1, 1, 3, 3, 3, 4, 5, 6, 1, 2, 2])
    labels = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0])
    fit, val = D.validation_cut(users, times, labels)
    np.testing.assert_array_equal(fit, [0, 1, 6, 7, 8])
    np.testing.assert_array_equal(val, [2, 3, 4, 9, 10])


def test_batches_keep_every_row_in_order_unless_shuffled():
    cols = {"x": np.arange(10), "y": np.arange(10) * 2}
    rows = np.concatenate([b["x"].numpy() for b in D.batches(cols, 4)])
    np.testing.assert_array_equal(rows, np.arange(10))
    shuffled = [b["x"].numpy() for b in D.batches(cols, 4, seed=0)]
    assert [len(b) for b in shuffled] == [4, 4]  # the last, partial batch is dropped
    flat = np.concatenate(shuffled)
    assert len(set(flat)) == 8 and not np.array_equal(flat, np.arange(8))


def test_describe_counts_examples_positives_and_users():
    cols = {F.LABEL: np.array([1, 0, 0, 1]), F.transformed_name(F.USER_ID): np.array([0, 0, 1, 2])}
    assert D.describe({"eval": cols}) == {"eval": {"examples": 4, "positives": 2, "users": 3}}


def test_relaimpr_and_the_paired_summary():
    from bench import ranking as B

    # (0.8 - 0.5) / (0.75 - 0.5) - 1 = 0.3 / 0.25 - 1 = 0.2; equal AUCs give 0.
    assert B.relaimpr(0.8, 0.75) == pytest.approx(0.2)
    assert B.relaimpr(0.7, 0.7) == 0.0
    run = {"logloss": 0.5, "examples_per_second": 10.0, "epoch_seconds": 1.0, "best_epoch": 2}
    runs = {
        "din": [dict(run, auc=0.8, gauc=0.7), dict(run, auc=0.7, gauc=0.7)],
        "dnn": [dict(run, auc=0.75, gauc=0.6), dict(run, auc=0.75, gauc=0.6)],
        "din_prelu": [dict(run, auc=0.75, gauc=0.6), dict(run, auc=0.75, gauc=0.6)],
    }
    out = B.summarize(runs, {}, {"name": "test"})[B.DATASET]
    # DIN: mean 0.75, sample std sqrt(2 * 0.05^2 / 1) = 0.070711; RelaImpr of the means 0.
    assert out["din"]["auc_mean"] == pytest.approx(0.75)
    assert out["din"]["auc_std"] == pytest.approx(0.070711, abs=1e-6)
    assert out["relaimpr_din_vs_dnn"] == pytest.approx(0.0)
    assert out["din"]["relaimpr_vs_dnn_per_seed"] == pytest.approx([0.2, -0.2])
