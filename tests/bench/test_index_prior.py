"""bench.index_prior: the column's width leaves every dot product unchanged."""

import numpy as np

from bench.index_prior import recall, with_column


def test_the_column_adds_beta_log1p_count_at_any_width():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    q = np.array([[0.6, 0.8]])
    counts = np.array([np.e - 1, np.e**2 - 1])  # log(1 + n) = 1, 2
    for width in (1.0, 0.25):
        xx, qq = with_column(x, q, counts, beta=0.1, width=width)
        assert xx[:, -1].max() == np.float32(width)
        # by hand: [0.6, 0.8] + 0.1 * [1, 2]
        np.testing.assert_allclose(qq @ xx.T, [[0.7, 1.0]], rtol=1e-6)


def test_recall_counts_the_shared_items():
    assert recall(np.array([[1, 2, 9]]), np.array([[2, 1, 3]])) == 2 / 3
