"""The item-to-item channel trial (bench/retrieval_channels.py), by hand on 3 users x 4 items."""

import numpy as np
import pytest

from bench import retrieval_channels as C

X = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1]], np.float32)


def test_neighbours_are_cosine_co_occurrences_top_k_per_item():
    sim = C.neighbours(X, k=4)
    # items 0 and 1 co-occur twice, each seen twice: 2 / sqrt(2 * 2) = 1; 1 and 2: 1 / 2.
    assert sim[0, 1] == pytest.approx(1.0) and sim[1, 2] == pytest.approx(0.5)
    assert sim[2, 3] == pytest.approx(1 / np.sqrt(2)) and sim[0, 3] == 0
    assert np.all(np.diag(sim) == 0)
    one = C.neighbours(X, k=1)
    assert (one > 0).sum(axis=1).tolist() == [1, 1, 1, 1]  # sparse: k per item
    assert one[2, 3] == pytest.approx(1 / np.sqrt(2))  # item 2's best neighbour kept


def test_union_adds_the_channels_best_new_items_and_never_excluded_ones():
    scores = np.array([[0.0, 0.9, 0.5, 0.1]], np.float32)
    # The tower's list [0, 3]; a budget of 2 with mix 1 keeps [0] and adds item 1.
    assert C.union_hit_rate(np.array([[0, 3]]), scores, [[]], [1], mix=1, size=2) == 1.0
    assert C.union_hit_rate(np.array([[0, 3]]), scores, [[]], [1], mix=0, size=2) == 0.0
    # Item 1 excluded (seen): the channel adds item 2 instead.
    assert C.union_hit_rate(np.array([[0, 3]]), scores, [[1]], [2], mix=1, size=2) == 1.0


def test_channel_scores_sum_the_recent_items_rows():
    sim = C.neighbours(X, k=4)
    out = C.channel_scores([[3, 0, 1], []], sim, recent=2)
    np.testing.assert_allclose(out[0], sim[0] + sim[1])
    assert np.all(out[1] == 0)  # an empty history adds nothing
