"""EASE^R closed form on a hand-derived 3x3 case; MostPopular ranking and tie-breaking."""

import numpy as np
import pytest

from bench import baselines
from components.retrieval_evaluator import metrics as M

# Users x items: u0 = {0, 1}, u1 = {1, 2}, u2 = {0}.
X = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]], np.float32)


def test_interaction_matrix_is_binary_and_checks_bounds():
    x = baselines.interaction_matrix([0, 0, 1, 1, 2, 0], [0, 1, 1, 2, 0, 1], (3, 3))
    np.testing.assert_array_equal(x, X)  # the repeated (0, 1) counts once
    with pytest.raises(ValueError, match="cols must be in"):
        baselines.interaction_matrix([0], [3], (3, 3))
    with pytest.raises(ValueError, match="differ in length"):
        baselines.interaction_matrix([0, 1], [0], (3, 3))


def test_ease_closed_form_by_hand():
    # G = X^T X + 1*I = [[3,1,0],[1,3,1],[0,1,2]], det 13,
    # P = G^-1 = [[5,-2,1],[-2,6,-3],[1,-3,8]] / 13; B_ij = -P_ij / P_jj, B_jj = 0.
    b = baselines.ease_weights(X, lam=1.0)
    expected = np.array([[0, 1 / 3, -1 / 8], [2 / 5, 0, 3 / 8], [-1 / 5, 1 / 2, 0]])
    np.testing.assert_allclose(b, expected, atol=1e-12)
    # u2 = {0}: scores = X[2] @ B = row 0 of B.
    np.testing.assert_allclose(X[2] @ b, [0, 1 / 3, -1 / 8], atol=1e-12)


def test_ease_satisfies_its_optimality_condition():
    # (X^T X + lam I) B = (X^T X + lam I) - diag(1 / diag(P)): off-diagonals of G B and G agree.
    x = (np.random.default_rng(0).random((30, 8)) < 0.3).astype(np.float32)
    lam = 5.0
    b = baselines.ease_weights(x, lam)
    gram = x.T.astype(np.float64) @ x + lam * np.eye(8)
    off = ~np.eye(8, dtype=bool)
    np.testing.assert_allclose((gram @ b)[off], gram[off], atol=1e-9)
    assert np.all(np.diag(b) == 0)


def test_ease_rejects_a_non_positive_lambda():
    with pytest.raises(ValueError, match="lambda must be > 0"):
        baselines.ease_weights(X, 0.0)


def test_popularity_breaks_ties_by_catalog_order_without_reordering_counts():
    scores = baselines.popularity([3, 5, 3, 0, 5])
    np.testing.assert_array_equal(scores, [3, 5, 2, 1, 4])  # order 1, 4, 0, 2, 3
    with pytest.raises(ValueError, match="non-negative"):
        baselines.popularity([1, -1])


def test_most_popular_ranks_skip_each_users_seen_items():
    pop = baselines.popularity([3, 5, 3, 0, 5])  # order 1, 4, 0, 2, 3
    query = np.ones((2, 1), np.float32)
    # user a saw item 1: ranking 4, 0, 2, 3 -> target 0 at rank 1;
    # user b saw nothing: ranking 1, 4, 0, 2, 3 -> target 3 at rank 4.
    ranking = M.rank_targets(query, pop[:, None], np.array([0, 3]), [np.array([1]), np.array([])])
    assert list(ranking.ranks) == [1, 4]
    assert list(ranking.top[0][:4]) == [4, 0, 2, 3] and list(ranking.top[1]) == [1, 4, 0, 2, 3]
