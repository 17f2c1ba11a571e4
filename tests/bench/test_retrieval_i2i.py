"""The lever-3 trial's sparse cut and history indicator, on hand-worked matrices."""

import numpy as np

from bench.retrieval_i2i import history_matrix, sparse_top_k


def test_sparse_top_k_keeps_the_k_largest_magnitudes_per_row():
    b = np.array([[0.0, 3.0, -5.0, 1.0], [2.0, 0.0, 0.5, -0.1]], np.float32)
    got = sparse_top_k(b, 2)
    # row 0: |-5| and |3| stay; row 1: 2 and 0.5 stay
    np.testing.assert_array_equal(got, [[0.0, 3.0, -5.0, 0.0], [2.0, 0.0, 0.5, 0.0]])
    assert b[0, 3] == 1.0  # the input is not modified


def test_sparse_top_k_with_k_at_least_the_width_is_the_matrix():
    b = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(sparse_top_k(b, 3), b)


def test_history_matrix_scores_a_query_by_the_sum_of_its_items_rows():
    h = history_matrix([[0, 2], [], [1]], 3)
    np.testing.assert_array_equal(h, [[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    b = np.array([[0, 1, 2], [3, 0, 4], [5, 6, 0]], np.float32)
    # query 0 = row 0 + row 2 of B
    np.testing.assert_array_equal((h @ b)[0], [5, 7, 2])
