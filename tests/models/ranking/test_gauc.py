"""AUC and GAUC in numpy, worked out by hand."""

import math

import numpy as np
import pytest

from models.ranking.gauc import auc, gauc


def test_auc_counts_ties_as_half():
    # Positive/negative pairs: (0.9, 0.1) 1, (0.9, 0.4) 1, (0.4, 0.1) 1, (0.4, 0.4) 1/2 -> 3.5 / 4.
    assert auc([1, 0, 1, 0], [0.9, 0.1, 0.4, 0.4]) == pytest.approx(0.875)
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def test_gauc_weights_users_by_impressions_and_skips_one_class_users():
    # User a: positive 0.2 beats one of two negatives (0.1, not 0.5) -> AUC 0.5, 3 impressions.
    # User b: 0.9 > 0.3 -> AUC 1, 2 impressions. User c has only a positive: skipped.
    # GAUC = (3 * 0.5 + 2 * 1) / 5 = 0.7.
    labels = [1, 0, 0, 1, 0, 1]
    scores = [0.2, 0.5, 0.1, 0.9, 0.3, 0.7]
    users = np.array(["a", "a", "a", "b", "b", "c"])
    value, n = gauc(labels, scores, users)
    assert value == pytest.approx(0.7)
    assert n == 2
    # Order does not matter.
    perm = [5, 3, 0, 4, 2, 1]
    assert gauc(np.take(labels, perm), np.take(scores, perm), users[perm])[0] == pytest.approx(0.7)
