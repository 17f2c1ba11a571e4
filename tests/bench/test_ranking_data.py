"""B2's validation cut (hand-derived) and in-memory batches."""

import numpy as np

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
