"""k-means leaves for the portable (stock TF ops) partitioned search.

The catalog is clustered into L leaves (squared-L2 k-means on a sample, then
every item assigned to its nearest centroid). Leaves larger than the mean
size ceil(N / L) are cut into sub-leaves of at most that size, which share the
leaf's centroid, so every sub-leaf fits one padded row: the search gathers
whole rows of a [L', M, D] tensor, with M = ceil(N / L) and L' <= 2 L.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

ASSIGN_CHUNK = 65_536


@dataclasses.dataclass
class Partitions:
    """Padded leaves of a catalog.

    Attributes:
        num_leaves: L, the k-means leaves before splitting.
        centroids: [L', D] float32, the centroid of each (sub-)leaf.
        leaf_items: [L', M] int32 catalog rows of each sub-leaf, -1 = padding.
    """

    num_leaves: int
    centroids: np.ndarray
    leaf_items: np.ndarray

    def leaves_to_search(self, requested: int, k: int) -> int:
        """Sub-leaves to score per query for `requested` of the L leaves and top-k.

        The requested share of L is scaled to L' (searching all L leaves
        searches all L' sub-leaves), and raised until even the smallest
        sub-leaves together hold k items, so a search always returns k items.
        """
        total = len(self.leaf_items)
        scaled = math.ceil(requested * total / self.num_leaves)
        sizes = np.sort((self.leaf_items >= 0).sum(axis=1))
        enough = int(np.searchsorted(np.cumsum(sizes), min(k, sizes.sum()))) + 1
        return int(min(total, max(scaled, enough, 1)))


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[N] index of the nearest centroid (squared L2) of each row of x [N, D]."""
    half_norms = 0.5 * np.square(centroids).sum(axis=1)
    out = np.empty(len(x), np.int64)
    for start in range(0, len(x), ASSIGN_CHUNK):
        chunk = x[start : start + ASSIGN_CHUNK]
        out[start : start + len(chunk)] = np.argmax(chunk @ centroids.T - half_norms, axis=1)
    return out


def kmeans(
    x: np.ndarray, num_leaves: int, iterations: int = 10, sample: int = 100_000, seed: int = 0
) -> np.ndarray:
    """Lloyd's k-means on a sample of x [N, D]; returns centroids [L, D] float32.

    Centroids start at distinct random rows; a leaf that empties is re-seeded
    at a random row.
    """
    rng = np.random.default_rng(seed)
    if num_leaves > len(x):
        raise ValueError(f"num_leaves = {num_leaves} exceeds the catalog size {len(x)}")
    train = x[rng.choice(len(x), size=min(sample, len(x)), replace=False)]
    centroids = train[rng.choice(len(train), size=num_leaves, replace=False)].copy()
    for _ in range(iterations):
        labels = nearest(train, centroids)
        counts = np.bincount(labels, minlength=num_leaves)
        sums = np.stack(
            [np.bincount(labels, weights=col, minlength=num_leaves) for col in train.T], axis=1
        )
        empty = counts == 0
        centroids = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        centroids[empty] = train[rng.choice(len(train), size=int(empty.sum()))]
    return centroids.astype(np.float32)


def pad_leaves(labels: np.ndarray, centroids: np.ndarray, max_size: int) -> Partitions:
    """Splits the leaves given by labels [N] into padded sub-leaves of <= max_size items."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(len(centroids) + 1))
    rows, subs = [], []
    for leaf in range(len(centroids)):
        members = order[bounds[leaf] : bounds[leaf + 1]]
        for start in range(0, len(members), max_size):
            part = members[start : start + max_size]
            rows.append(np.pad(part, (0, max_size - len(part)), constant_values=-1))
            subs.append(leaf)
    return Partitions(
        num_leaves=len(centroids),
        centroids=centroids[np.array(subs)],
        leaf_items=np.stack(rows).astype(np.int32),
    )


def build_partitions(x: np.ndarray, num_leaves: int, seed: int = 0) -> Partitions:
    """k-means leaves of the catalog x [N, D], padded to the mean leaf size."""
    x = np.asarray(x, np.float32)
    centroids = kmeans(x, num_leaves, seed=seed)
    return pad_leaves(nearest(x, centroids), centroids, math.ceil(len(x) / num_leaves))
