"""Saveable top-k searchers over an index: ScaNN TF ops, or stock TF ops only.

Each searcher is a tf.Module whose `search(queries)` is a tf.function taking
queries [batch, dim] float32 and returning (indices [batch, k] int32 rows of
the catalog, scores [batch, k] float32 dot products), best first, with k
clamped to the catalog size.

`search` handles the whole batch in one pass, with no control flow: a batch-1
serving call then runs no dead loop branch, and TF's single-threaded executor
(which rejects Switch/Merge frames) can run the graph inline in the caller's
thread. Its memory grows with the batch, so each searcher states `max_batch`,
the largest batch whose intermediates fit SCORE_BUDGET; batch callers slice
their queries with `chunks`; the serving model records the limit in its
export.json, and the local server runs a larger request in slices. Attach one to a tf.Module and
`tf.saved_model.save` saves it; a ScaNN searcher reloads only in a process
that has imported `scann` (which registers its ops).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import tensorflow as tf

from models.search.params import IndexParams
from models.search.partitions import Partitions

# The ScannState tensors, in the order of scann_ops.ScannState / TensorsToScann.
SCANN_TENSORS = (
    "scann_config",
    "serialized_partitioner",
    "datapoint_to_token",
    "ah_codebook",
    "hashed_dataset",
    "int8_dataset",
    "int8_multipliers",
    "dp_norms",
    "dataset",
)
SCORE_BUDGET = 1 << 26  # floats of scores (or gathered leaf items) per search call: 256 MB
UNBOUNDED_BATCH = 1 << 20  # `max_batch` of a searcher whose memory does not grow per query
_QUERIES = tf.TensorSpec([None, None], tf.float32, name="queries")


@runtime_checkable
class Searcher(Protocol):
    """What every searcher offers (exact, partitioned, ScaNN; any future channel).

    Attributes:
        k: results per query (already clamped to the catalog size).
        max_batch: the largest batch one `search` call runs within SCORE_BUDGET.
    """

    k: int
    max_batch: int

    def search(self, queries: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """queries [batch, dim] float32 -> (indices [batch, k] int32, scores [batch, k])."""
        ...


def _scann_ops():
    """The ScaNN TF ops module (imported on first use: it loads and registers the ops)."""
    from scann.scann_ops.py import scann_ops

    return scann_ops


def chunks(queries, size: int) -> list:
    """queries [Q, ...] as consecutive slices of at most `size` rows (none when Q = 0)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [queries[start : start + size] for start in range(0, len(queries), size)]


def search_all(searcher: Searcher, queries: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Indices [Q, k] of searcher.search over queries [Q, D], in batches of at most
    batch_size and the searcher's max_batch."""
    size = min(batch_size, searcher.max_batch)
    out = [np.asarray(searcher.search(tf.constant(c))[0]) for c in chunks(queries, size)]
    return np.concatenate(out) if out else np.zeros((0, searcher.k), np.int32)


def _top_k(scores: tf.Tensor, k: int):
    scores, indices = tf.math.top_k(scores, k)
    return indices, scores


class ExactSearcher(tf.Module):
    """Brute force: queries @ embeddings^T then top_k (stock ops)."""

    def __init__(self, embeddings: np.ndarray, k: int, name: str | None = None):
        super().__init__(name=name)
        self.embeddings = tf.Variable(np.asarray(embeddings, np.float32), trainable=False)
        self.k = min(k, len(embeddings))
        self.max_batch = max(1, SCORE_BUDGET // len(embeddings))  # scores [batch, N]

    @tf.function(input_signature=[_QUERIES])
    def search(self, queries):
        """queries [batch, dim] -> (indices [batch, k] int32, scores [batch, k])."""
        return _top_k(tf.matmul(queries, self.embeddings, transpose_b=True), self.k)


class PartitionedSearcher(tf.Module):
    """Stock-op IVF: score centroids, gather the top leaves' padded rows, matmul, top_k."""

    def __init__(self, embeddings: np.ndarray, partitions: Partitions, leaves: int, k: int):
        super().__init__()
        items = partitions.leaf_items
        padded = np.where((items >= 0)[..., None], embeddings[np.maximum(items, 0)], 0.0)
        self.centroids = tf.Variable(partitions.centroids, trainable=False)
        self.leaf_embeddings = tf.Variable(padded.astype(np.float32), trainable=False)
        self.leaf_items = tf.Variable(items, trainable=False)
        self.leaves = int(leaves)
        self.k = min(k, len(embeddings))
        gathered = self.leaves * items.shape[1] * embeddings.shape[1]  # floats per query
        self.max_batch = max(1, SCORE_BUDGET // gathered)

    @tf.function(input_signature=[_QUERIES])
    def search(self, queries):
        """queries [c, dim] -> top-k (indices [c, k] int32, scores [c, k]) over the items
        of each query's best leaves."""
        centroid_scores = tf.matmul(queries, self.centroids, transpose_b=True)  # [c, L']
        _, leaves = tf.math.top_k(centroid_scores, self.leaves)  # [c, T]
        embeddings = tf.gather(self.leaf_embeddings, leaves)  # [c, T, M, dim]
        items = tf.reshape(tf.gather(self.leaf_items, leaves), [tf.shape(queries)[0], -1])
        scores = tf.einsum("cd,ctmd->ctm", queries, embeddings)
        scores = tf.reshape(scores, tf.shape(items))  # [c, T * M]
        scores = tf.where(items >= 0, scores, tf.fill(tf.shape(scores), -np.inf))
        positions, top = _top_k(scores, self.k)
        return tf.gather(items, positions, batch_dims=1), top


class ScannSearcher(tf.Module):
    """ScaNN TF ops: the searcher is rebuilt from its saved state once per loaded graph."""

    def __init__(self, assets: dict[str, np.ndarray], params: IndexParams, k: int):
        super().__init__()
        self.state = _scann_ops().ScannState([assets[n] for n in SCANN_TENSORS])
        self.k = min(k, params.num_items)
        self.pre_reorder = max(params.reorder, self.k) if params.reorder else -1
        self.leaves = params.num_leaves_to_search
        self.max_batch = UNBOUNDED_BATCH  # ScaNN bounds its own per-query memory

    @tf.function(input_signature=[_QUERIES])
    def search(self, queries):
        """queries [batch, dim] -> (indices [batch, k] int32, scores [batch, k])."""
        handle = self.state.recreate_handle()
        return _scann_ops().scann_search_batched(
            handle, queries, self.k, self.pre_reorder, self.leaves, True
        )


def scann_assets(embeddings: np.ndarray, params: IndexParams, seed_k: int = 10) -> dict:
    """Trains a ScaNN searcher (TF ops) and returns its state tensors as numpy arrays."""
    builder = (
        _scann_ops()
        .builder(embeddings, seed_k, "dot_product")
        .tree(
            num_leaves=params.num_leaves,
            num_leaves_to_search=params.num_leaves_to_search,
            training_sample_size=params.training_sample_size,
        )
    )
    if params.quantize:
        builder = builder.score_ah(
            params.dimensions_per_block,
            anisotropic_quantization_threshold=params.anisotropic_threshold,
            training_sample_size=params.training_sample_size,
        )
        if params.reorder:
            builder = builder.reorder(params.reorder)
    else:
        builder = builder.score_brute_force()
    state = builder.build().serialize_to_module()
    return {n: getattr(state, n).numpy() for n in SCANN_TENSORS}
