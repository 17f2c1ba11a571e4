"""Candidate samplers for sampled softmax / mixed negatives, and positive re-sampling.

- `log_uniform_probs`, `unigram_probs`: sampling distributions over item ids.
- `CandidateSampler`: draws ids with replacement and returns each draw's log
  expected count log(m * p) for log-Q correction, in numpy (`sample`) or in TF
  (`sample_tf`, usable inside a tf.function, deterministic given a seed).
- `positive_keep_probability`, `cold_item_weights`, `resample_positives`:
  word2vec-style down-sampling of very popular positives and over-sampling of
  cold items in a tf.data pipeline.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from schemas import features as F


def log_uniform_probs(num_ids: int) -> np.ndarray:
    """Zipfian log-uniform probabilities over ids ranked by popularity (id 0 most popular).

    P(k) = log((k + 2) / (k + 1)) / log(V + 1), as tf.random.log_uniform_candidate_sampler;
    the terms telescope, so they sum to 1.

    Args:
        num_ids: V.

    Returns:
        [V] float64 probabilities.
    """
    if num_ids < 1:
        raise ValueError(f"num_ids must be >= 1, got {num_ids}")
    k = np.arange(num_ids, dtype=np.float64)
    return np.log1p(1.0 / (k + 1.0)) / np.log(num_ids + 1.0)


def unigram_probs(counts, power: float = 0.75) -> np.ndarray:
    """Probabilities proportional to count**power (word2vec's unigram^0.75).

    Args:
        counts: [V] non-negative counts; a zero count gets probability 0.
        power: the exponent.

    Returns:
        [V] float64 probabilities.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or np.any(counts < 0) or not np.any(counts > 0):
        raise ValueError("counts must be a 1-d array of non-negative counts, not all zero")
    weights = np.where(counts > 0, counts**power, 0.0)
    return weights / weights.sum()


class CandidateSampler:
    """Draws candidate ids with replacement from a fixed distribution.

    Args:
        probs: [V] probabilities (normalised here).
        seed: seed of both the numpy and the TF generator.
    """

    def __init__(self, probs, seed: int = 0):
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 1 or np.any(probs < 0) or not probs.sum() > 0:
            raise ValueError("probs must be a 1-d array of non-negative numbers, not all zero")
        self.probs = probs / probs.sum()
        self.num_ids = len(self.probs)
        self._cdf = np.cumsum(self.probs)
        self._rng = np.random.default_rng(seed)
        self._tf_generator = tf.random.Generator.from_seed(seed)
        with np.errstate(divide="ignore"):
            log_probs = np.log(self.probs)
        self._log_probs = tf.constant(log_probs, tf.float32)

    def sample(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Draws m ids (numpy).

        Returns:
            (ids int64 [m], log expected count float32 [m] = log(m * p[id])).
        """
        draws = np.searchsorted(self._cdf, self._rng.random(m) * self._cdf[-1], side="right")
        ids = np.minimum(draws, self.num_ids - 1).astype(np.int64)
        return ids, np.log(m * self.probs[ids]).astype(np.float32)

    def sample_tf(self, m: int, seed=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Draws m ids in TF (works inside a tf.function).

        Args:
            m: number of draws.
            seed: optional int [2] seed of a stateless draw (e.g. [seed, step]);
                the same seed gives the same ids. Without it an internal
                tf.random.Generator (created with the sampler, seeded by its
                seed) advances on every call.

        Returns:
            (ids int64 [m], log expected count float32 [m]).
        """
        if seed is None:
            seed = self._tf_generator.make_seeds(1)[:, 0]
        logits = self._log_probs[tf.newaxis, :]
        ids = tf.random.stateless_categorical(logits, m, seed=seed, dtype=tf.int64)[0]
        log_count = tf.gather(self._log_probs, ids) + tf.math.log(tf.cast(m, tf.float32))
        return ids, log_count


def positive_keep_probability(counts, threshold: float = 1e-3) -> np.ndarray:
    """word2vec-style keep probability of a positive: min(1, sqrt(t / f) + t / f).

    f is the item's share of all positives. The probability is 1 for items with
    f <= ~t and shrinks as the count grows (the drop probability grows).

    Args:
        counts: [V] positive counts per item id.
        threshold: t.

    Returns:
        [V] float32 keep probabilities (1 for items without positives).
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return np.ones_like(counts, dtype=np.float32)
    freq = counts / total
    with np.errstate(divide="ignore"):
        ratio = np.where(freq > 0, threshold / np.where(freq > 0, freq, 1.0), np.inf)
    return np.minimum(1.0, np.sqrt(ratio) + ratio).astype(np.float32)


def cold_item_weights(counts, min_count: int = 5, boost: float = 2.0) -> np.ndarray:
    """Repeat factor (or loss weight) per item: `boost` for 0 < count < min_count, else 1.

    Args:
        counts: [V] positive counts per item id.
        min_count: items with fewer positives are cold.
        boost: factor for cold items, >= 1 (fractions are repeated stochastically).

    Returns:
        [V] float32 factors.
    """
    if boost < 1.0:
        raise ValueError(f"boost must be >= 1, got {boost}")
    counts = np.asarray(counts, dtype=np.float64)
    cold = (counts > 0) & (counts < min_count)
    return np.where(cold, boost, 1.0).astype(np.float32)


def _lookup(table, ids: tf.Tensor) -> tf.Tensor:
    """table[ids] for ids inside the table, 1.0 for ids outside it (or no table)."""
    if table is None:
        return tf.ones_like(ids, tf.float32)
    table = tf.constant(np.asarray(table, dtype=np.float32))
    inside = tf.logical_and(ids >= 0, ids < tf.cast(tf.shape(table)[0], ids.dtype))
    return tf.where(inside, tf.gather(table, tf.where(inside, ids, 0)), 1.0)


def resample_positives(
    dataset: tf.data.Dataset,
    keep_prob_table=None,
    cold_repeat_table=None,
    item_key: str = F.transformed_name(F.ITEM_ID),
    seed: int = 0,
    *,
    label_key: str | None = None,
) -> tf.data.Dataset:
    """Drops popular positives and repeats cold ones in an unbatched dataset.

    An example with item id i is kept with probability keep_prob_table[i]; a
    kept one is emitted floor(r) times plus once more with probability
    frac(r), r = cold_repeat_table[i]. Its expected multiplicity is thus
    keep * r. Draws are stateless, keyed by (seed, element index), so the
    output is deterministic.

    Args:
        dataset: unbatched dict examples (call `.unbatch()` first on batches).
        keep_prob_table: optional [V] keep probability per item id.
        cold_repeat_table: optional [V] repeat factor per item id (>= 1).
        item_key: the int item id feature (e.g. the transformed item id).
        seed: int seed.
        label_key: if set, only examples with label == 1 are resampled; the
            others pass through unchanged.

    Returns:
        The re-sampled, still unbatched dataset.
    """

    def multiplicity(index, example):
        ids = tf.cast(tf.reshape(example[item_key], []), tf.int64)
        u = tf.random.stateless_uniform([2], seed=tf.stack([tf.cast(seed, tf.int64), index]))
        r = _lookup(cold_repeat_table, ids)
        count = tf.floor(r) + tf.cast(u[1] < r - tf.floor(r), tf.float32)
        count = tf.where(u[0] < _lookup(keep_prob_table, ids), count, 0.0)
        if label_key is not None:
            positive = tf.equal(tf.reshape(example[label_key], []), 1)
            count = tf.where(positive, count, 1.0)
        return tf.data.Dataset.from_tensors(example).repeat(tf.cast(count, tf.int64))

    return dataset.enumerate().flat_map(multiplicity)
