"""Padded k-means leaves of the portable searcher (hand-derived)."""

import numpy as np

from models.search import partitions as P


def test_nearest_centroid_by_squared_l2():
    centroids = np.array([[0.0, 0.0], [10.0, 0.0]], np.float32)
    x = np.array([[1.0, 1.0], [6.0, 0.0], [4.0, 0.0], [11.0, -3.0]], np.float32)
    # distances to (0,0) / (10,0): 2/82, 36/16, 16/36, 130/10
    np.testing.assert_array_equal(P.nearest(x, centroids), [0, 1, 0, 1])


def test_big_leaves_are_split_into_padded_sub_leaves():
    centroids = np.array([[0.0], [1.0], [2.0]], np.float32)
    labels = np.array([0, 1, 0, 0, 2, 0])
    parts = P.pad_leaves(labels, centroids, max_size=2)
    # leaf 0 = rows 0, 2, 3, 5 -> two sub-leaves; leaves 1 and 2 one row each, padded
    np.testing.assert_array_equal(parts.leaf_items, [[0, 2], [3, 5], [1, -1], [4, -1]])
    np.testing.assert_array_equal(parts.centroids[:, 0], [0.0, 0.0, 1.0, 2.0])
    assert parts.num_leaves == 3


def test_leaves_to_search_scales_to_sub_leaves_and_covers_k():
    parts = P.pad_leaves(np.array([0, 1, 0, 0, 2, 0]), np.zeros((3, 1), np.float32), 2)
    # 4 sub-leaves for 3 leaves: 1 leaf -> ceil(4 / 3) = 2 sub-leaves
    assert parts.leaves_to_search(1, k=1) == 2
    # sub-leaf sizes sorted [1, 1, 2, 2], cumsum [1, 2, 4, 6]: k = 5 needs all 4
    assert parts.leaves_to_search(1, k=5) == 4
    assert parts.leaves_to_search(1, k=3) == 3
    # all 3 leaves -> all 4 sub-leaves; k larger than the catalog -> everything
    assert parts.leaves_to_search(3, k=1) == 4
    assert parts.leaves_to_search(1, k=100) == 4


def test_kmeans_finds_separated_blobs():
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]], np.float32)
    x = np.concatenate([c + 0.1 * rng.normal(size=(50, 2)) for c in centres]).astype(np.float32)
    found = P.kmeans(x, 3, seed=1)
    order = [int(np.argmin(np.square(found - c).sum(axis=1))) for c in centres]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(found[order], centres, atol=0.1)
    parts = P.build_partitions(x, 3, seed=1)
    # every row appears exactly once; the mean leaf size is 50, so no leaf is split
    rows = parts.leaf_items[parts.leaf_items >= 0]
    np.testing.assert_array_equal(np.sort(rows), np.arange(150))
    assert parts.leaf_items.shape == (3, 50)
