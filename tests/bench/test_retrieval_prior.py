"""bench.retrieval_prior's extra column adds beta * log(1 + n) to every dot product."""

import numpy as np

from bench.retrieval_prior import with_prior


def test_the_extra_column_adds_beta_log1p_count_to_each_score():
    query = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    items = np.array([[0.5, 0.5], [1.0, -1.0], [0.0, 0.0]], np.float32)
    counts = np.array([0, np.e - 1, np.e**2 - 1])  # log(1 + n) = 0, 1, 2
    q, c = with_prior(query, items, counts, beta=0.25)
    # by hand: q . c + 0.25 * (0, 1, 2)
    want = np.array([[0.5, 1.0 + 0.25, 0.0 + 0.5], [1.0, -2.0 + 0.25, 0.0 + 0.5]])
    np.testing.assert_allclose(q @ c.T, want, rtol=1e-6)
    q0, c0 = with_prior(query, items, counts, beta=0.0)
    np.testing.assert_allclose(q0 @ c0.T, query @ items.T)  # beta 0: the model's own order
