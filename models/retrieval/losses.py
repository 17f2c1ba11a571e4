"""Retrieval losses: listwise (in-batch + mixed negatives), pointwise, pairwise, sampled softmax.

Pure TF functions, no Keras state. Every loss returns a scalar: the (weighted)
mean over the batch. Conventions:
- Query and candidate embeddings are already L2-normalised, so `q . c` is a
  cosine; listwise logits are `q . c / temperature`.
- In a listwise logit matrix [B, N] the label of row i is column i (the
  in-batch positive); columns B.. are extra sampled negatives.
- `log_q` is the log of a candidate's *expected count* in the candidate set
  (Yi et al. 2019, "Sampling-bias-corrected neural modeling"); subtracting it
  from the logits corrects the popularity bias of in-batch / sampled negatives.
Numerics: softmax cross-entropy and logistic terms are computed in logsumexp /
softplus form; masked logits are set to MASK_LOGIT (exp underflows to 0).
"""

from __future__ import annotations

import tensorflow as tf

MASK_LOGIT = -1e9  # a masked candidate: exp(MASK_LOGIT - max) == 0 in float32
PROB_FLOOR = 1e-12  # probabilities are floored before the log (an unseen item has p = 0)


def _float(x) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


def _weighted_mean(per_row: tf.Tensor, sample_weight=None) -> tf.Tensor:
    """sum(w * l) / sum(w) over rows (a plain mean without weights); [B] -> scalar."""
    if sample_weight is None:
        return tf.reduce_mean(per_row)
    w = tf.reshape(_float(sample_weight), [-1])
    return tf.math.divide_no_nan(tf.reduce_sum(w * per_row), tf.reduce_sum(w))


def _label_mask(logits: tf.Tensor) -> tf.Tensor:
    """Boolean [B, N]: True at (i, i), the label column of each row."""
    shape = tf.shape(logits)
    return tf.cast(tf.one_hot(tf.range(shape[0]), shape[1], on_value=1, off_value=0), tf.bool)


def _same_ids(row_ids, column_ids) -> tf.Tensor:
    """Boolean [B, N]: row_ids [B] == column_ids [N] (ints of any width, or strings)."""
    row_ids, column_ids = tf.convert_to_tensor(row_ids), tf.convert_to_tensor(column_ids)
    if column_ids.dtype != row_ids.dtype:
        column_ids = tf.cast(column_ids, row_ids.dtype)
    return tf.equal(tf.reshape(row_ids, [-1, 1]), tf.reshape(column_ids, [1, -1]))


def log_q_correct(logits, log_q) -> tf.Tensor:
    """Log-Q correction: logits [B, N] - log_q [N] (broadcast over rows).

    Args:
        logits: [B, N] scores.
        log_q: [N] log of the expected count of candidate j in the candidate set.

    Returns:
        [B, N] corrected logits.
    """
    return _float(logits) - tf.reshape(_float(log_q), [1, -1])


def remove_accidental_hits(logits, positive_ids, candidate_ids) -> tf.Tensor:
    """Masks negatives that are in fact the row's positive item.

    Entry (i, j) with candidate_ids[j] == positive_ids[i] and j != i is set to
    MASK_LOGIT; the label column j == i is kept.

    Args:
        logits: [B, N] with the label of row i at column i.
        positive_ids: [B] item id of each row's positive.
        candidate_ids: [N] item id of each column.

    Returns:
        [B, N] logits.
    """
    logits = _float(logits)
    hit = tf.logical_and(_same_ids(positive_ids, candidate_ids), ~_label_mask(logits))
    return tf.where(hit, tf.constant(MASK_LOGIT, logits.dtype), logits)


def keep_hardest_negatives(logits, k: int) -> tf.Tensor:
    """The positive logit and the k highest-scoring negatives of each row.

    Args:
        logits: [B, N] with the label of row i at column i.
        k: negatives kept per row (at most N - 1 are available).

    Returns:
        [B, 1 + min(k, N - 1)]: column 0 is the positive, then negatives in
        decreasing score order. The label of every row is column 0.
    """
    logits = _float(logits)
    rows = tf.range(tf.shape(logits)[0])
    positive = tf.gather(logits, rows[:, tf.newaxis], batch_dims=1)  # [B, 1]
    negatives = tf.where(_label_mask(logits), tf.constant(MASK_LOGIT, logits.dtype), logits)
    k = tf.minimum(k, tf.shape(logits)[1] - 1)
    hardest = tf.math.top_k(negatives, k=k, sorted=True).values
    return tf.concat([positive, hardest], axis=1)


def listwise_loss(
    query,
    candidates,
    *,
    temperature: float = 0.05,
    log_q=None,
    positive_ids=None,
    candidate_ids=None,
    num_hard_negatives: int = 0,
    sample_weight=None,
) -> tf.Tensor:
    """Softmax cross-entropy over in-batch (and extra sampled) candidates.

    Args:
        query: [B, D] L2-normalised query embeddings.
        candidates: [N, D], N >= B: rows 0..B-1 are each query's positive,
            rows B.. extra sampled negatives (mixed negative sampling).
        temperature: logits are q . c / temperature.
        log_q: optional [N] log expected counts (see `mixed_log_q`).
        positive_ids: optional [B] item ids of the positives; with
            candidate_ids, enables accidental-hit removal.
        candidate_ids: optional [N] item ids of the candidates.
        num_hard_negatives: if > 0, keep only this many hardest negatives per row.
        sample_weight: optional [B] per-query weights.

    Returns:
        Scalar: weighted mean over the batch of -log softmax(logits)[i, i].
    """
    logits = tf.matmul(_float(query), _float(candidates), transpose_b=True) / temperature
    if log_q is not None:
        logits = log_q_correct(logits, log_q)
    if positive_ids is not None and candidate_ids is not None:
        logits = remove_accidental_hits(logits, positive_ids, candidate_ids)
    if num_hard_negatives > 0:
        logits = keep_hardest_negatives(logits, num_hard_negatives)
        labels = tf.zeros(tf.shape(logits)[:1], tf.int32)
    else:
        labels = tf.range(tf.shape(logits)[0])
    per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return _weighted_mean(per_row, sample_weight)


def mixed_log_q(batch_item_probs, batch_size, sampled_item_probs, num_sampled) -> tf.Tensor:
    """Per-source log expected counts for mixed negative sampling (Yang et al. 2020).

    In-batch candidates arrive with the data distribution p (B draws); sampled
    ones with the sampler's q (M draws). Each column gets its own source's count.

    Args:
        batch_item_probs: [B] p_j of each in-batch candidate.
        batch_size: B.
        sampled_item_probs: [M] q_j of each sampled candidate.
        num_sampled: M.

    Returns:
        [B + M]: log(B * p_j) for in-batch columns, then log(M * q_j).
    """
    p = tf.maximum(tf.reshape(_float(batch_item_probs), [-1]), PROB_FLOOR)
    q = tf.maximum(tf.reshape(_float(sampled_item_probs), [-1]), PROB_FLOOR)
    return tf.concat(
        [tf.math.log(_float(batch_size) * p), tf.math.log(_float(num_sampled) * q)], axis=0
    )


def pointwise_loss(pos_cos, neg_cos, *, scale: float = 10.0, sample_weight=None) -> tf.Tensor:
    """Binary cross-entropy on sigmoid(scale * cos), positives label 1, negatives 0.

    Args:
        pos_cos: [B] cosine of each query with its positive.
        neg_cos: [B, K] cosines with K negatives.
        scale: logit = scale * cos.
        sample_weight: optional [B] per-query weights.

    Returns:
        Scalar mean over the B * (1 + K) terms: softplus(-s*pos) and softplus(s*neg).
    """
    pos, neg = _float(pos_cos), _float(neg_cos)
    per_row = tf.nn.softplus(-scale * pos) + tf.reduce_sum(tf.nn.softplus(scale * neg), axis=1)
    terms = tf.cast(1 + tf.shape(neg)[1], tf.float32)
    return _weighted_mean(per_row / terms, sample_weight)


def triplet_hinge_loss(pos_cos, neg_cos, *, margin: float = 0.2, sample_weight=None) -> tf.Tensor:
    """Mean over [B, K] of max(0, cos(a, b-) + margin - cos(a, b+)).

    Args:
        pos_cos: [B] anchor-positive cosines.
        neg_cos: [B, K] anchor-negative cosines.
        margin: m.
        sample_weight: optional [B] per-anchor weights.
    """
    gap = _float(neg_cos) + margin - tf.reshape(_float(pos_cos), [-1, 1])
    return _weighted_mean(tf.reduce_mean(tf.nn.relu(gap), axis=1), sample_weight)


def triplet_logistic_loss(pos_cos, neg_cos, *, scale: float = 10.0, sample_weight=None):
    """Mean over [B, K] of log(1 + exp(scale * (cos(a, b-) - cos(a, b+)))) (softplus form).

    Args:
        pos_cos: [B] anchor-positive cosines.
        neg_cos: [B, K] anchor-negative cosines.
        scale: s.
        sample_weight: optional [B] per-anchor weights.
    """
    diff = _float(neg_cos) - tf.reshape(_float(pos_cos), [-1, 1])
    return _weighted_mean(tf.reduce_mean(tf.nn.softplus(scale * diff), axis=1), sample_weight)


def sampled_softmax_loss(
    query,
    item_weights,
    positive_ids,
    sampled_ids,
    sampled_log_q,
    *,
    temperature: float = 0.05,
    positive_log_q=None,
    remove_hits: bool = True,
    adaptive_top_m: int = 0,
    adaptive_temperature: float = 1.0,
    sample_weight=None,
) -> tf.Tensor:
    """Sampled softmax over the item vocabulary; the item vectors are the softmax weights.

    Logits over [positive, M sampled] are q . w / temperature, minus log-Q
    (sampled_log_q for the samples; positive_log_q for the positive if given),
    with sampled copies of the positive masked (remove_hits). With
    adaptive_top_m > 0, the "per_row" adaptive variant: each row keeps its own
    top-m corrected sampled logits and all kept logits (positive included) are
    divided by adaptive_temperature. The published TAPAS form (labels shared by
    the batch, the temperature only for picking them) is `tapas.py`.

    Args:
        query: [B, D] query embeddings.
        item_weights: [V, D] item vectors (softmax weights).
        positive_ids: [B] int ids of the positives.
        sampled_ids: [M] int ids drawn by a candidate sampler.
        sampled_log_q: [M] log expected count of each sample (log(M * q)).
        temperature: first-pass temperature.
        positive_log_q: optional [B] log expected count of each positive.
        remove_hits: mask samples equal to the row's positive.
        adaptive_top_m: if > 0, keep this many highest-scoring samples per row.
        adaptive_temperature: second-pass temperature.
        sample_weight: optional [B] per-query weights.

    Returns:
        Scalar weighted mean of -log softmax(logits)[positive].
    """
    query, item_weights = _float(query), _float(item_weights)
    positives = tf.gather(item_weights, positive_ids)  # [B, D]
    pos_logit = tf.reduce_sum(query * positives, axis=1, keepdims=True) / temperature  # [B, 1]
    sampled = tf.gather(item_weights, sampled_ids)  # [M, D]
    logits = tf.matmul(query, sampled, transpose_b=True) / temperature  # [B, M]
    logits = log_q_correct(logits, sampled_log_q)
    if positive_log_q is not None:
        pos_logit -= tf.reshape(_float(positive_log_q), [-1, 1])
    if remove_hits:
        hit = _same_ids(positive_ids, sampled_ids)
        logits = tf.where(hit, tf.constant(MASK_LOGIT, tf.float32), logits)
    if adaptive_top_m > 0:
        m = tf.minimum(adaptive_top_m, tf.shape(logits)[1])
        logits = tf.math.top_k(logits, k=m, sorted=False).values
    full = tf.concat([pos_logit, logits], axis=1)  # label: column 0
    if adaptive_top_m > 0:
        full = full / adaptive_temperature
    labels = tf.zeros(tf.shape(full)[:1], tf.int32)
    per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=full)
    return _weighted_mean(per_row, sample_weight)
