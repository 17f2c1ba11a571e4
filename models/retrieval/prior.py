"""An additive popularity prior on the two-tower's retrieval score, as one dot-product column.

The pushed retrieval score of user u and item i is

    score(u, i) = q_u . c_i + beta * log(1 + n_i),

with n_i the item's positive training examples (the two-tower's own targets) and beta in
cosine units (beta / temperature in logits: 0.6 at the defaults). The in-batch softmax is
trained with log-Q correction, which subtracts log n_i + const from every logit; the
prior puts a measured share of that popularity back at retrieval time. B1 validation,
`python -m bench.retrieval_prior` (positives counted, 2 seeds of each data set): beta .03
raised HR@10 on all 4 runs and NDCG@10 on 3 (synthetic +.001 / +.007 and +.009 / +.008,
ML-100K +.028 / +.017 and +.003 / -.001); counting every rated event instead was within
.005 of it on average.

It is carried by the embeddings, so every consumer of the two signatures (the ScaNN
index, the combined serving model, the evaluators, the miner) sees the same score and
ScaNN still searches a plain dot product:

    query     [q, beta / s]
    candidate [c, s * log(1 + n)]        s = COLUMN_MAX / log(1 + max n)

The product is beta * log(1 + n) for any s; s only shapes an index's k-means partitions.
A column as wide as the unit vectors' coordinates splits them by popularity as much as by
direction. On 100K clustered unit vectors with Zipf counts (beta .03; the default index:
316 leaves, AH, reordering; `python -m bench.index_prior`) ScaNN's recall@10 was .979
with the column in [0, 1] and .992 in [0, 0.25] and [0, 0.1] alike (.996 without a
prior; the portable partitioned search .992, .994, .994 and .999): COLUMN_MAX = 0.25.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

INFO_KEY = "popularity_prior"  # the key of retrieval.json's record
COLUMN_MAX = 0.25  # the candidate column's largest value (see above)


class PopularityPrior:
    """The prior's two columns.

    Args:
        beta: weight of log(1 + n) in cosine units (> 0; a prior of 0 is no prior).
        counts: [V] positive training examples per item id, OOV buckets included (0 there).

    Raises:
        ValueError: beta not finite and > 0, or counts not a non-empty vector of finite
            values >= 0.
    """

    def __init__(self, beta: float, counts):
        if not (np.isfinite(beta) and beta > 0):
            raise ValueError(f"popularity prior beta must be finite and > 0, got {beta}")
        counts = np.asarray(counts, np.float64)
        if counts.ndim != 1 or not len(counts) or np.any(~np.isfinite(counts) | (counts < 0)):
            raise ValueError("popularity prior counts must be a non-empty vector of finite >= 0")
        self.beta = float(beta)
        log = np.log1p(counts)
        self.max_count = int(counts.max())
        self.scale = COLUMN_MAX / float(log.max()) if log.max() > 0 else 1.0
        self.column = (log * self.scale).astype(np.float32)  # [V], in [0, COLUMN_MAX]
        self.query_value = self.beta / self.scale
        self._column = tf.constant(self.column)

    def query(self, embeddings: tf.Tensor) -> tf.Tensor:
        """[B, D] query embeddings -> [B, D + 1]: beta / s appended."""
        fill = tf.fill([tf.shape(embeddings)[0], 1], tf.constant(self.query_value, tf.float32))
        return tf.concat([embeddings, fill], axis=1)

    def candidates(self, embeddings: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
        """[N, D] candidate embeddings of item ids [N] (transformed; clipped into the
        table) -> [N, D + 1]: s * log(1 + n_id) appended."""
        ids = tf.clip_by_value(tf.cast(ids, tf.int64), 0, len(self.column) - 1)
        return tf.concat([embeddings, tf.gather(self._column, ids)[:, None]], axis=1)

    def item_scores(self) -> np.ndarray:
        """beta * log(1 + n) per item id [V]: what the column adds to every score."""
        return (self.query_value * self.column.astype(np.float64)).astype(np.float32)

    def describe(self) -> dict:
        return {
            "beta": self.beta,
            "scale": self.scale,
            "max_count": self.max_count,
            "counted": "positive training examples (label 1) per item id",
        }


def make_prior(beta: float, counts) -> PopularityPrior | None:
    """The prior for RetrievalConfig.tower.popularity_prior = beta (None when beta is 0)."""
    return None if beta == 0 else PopularityPrior(beta, counts)
