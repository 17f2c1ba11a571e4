"""Two-pass adaptive sampled softmax (TAPAS, Bai et al. 2017, arXiv:1707.03073).

The published form, as TF1's `tf.contrib.nn.rank_sampled_softmax_loss` computed it:
1. First pass: `num_sampled` labels drawn from a prior (log-uniform or unigram),
   made unique, each with its expected count in the unique sample (TF's unique
   samplers: 1 - (1 - q)^num_sampled).
2. Second pass: every sampled label j gets a score summed over the whole batch,
   s(j) = log sum_b exp(logit(b, j) / T) (a soft sum: as T grows the ranking tends
   to that of sum_b logit(b, j)); the `num_resampled` best labels are kept,
   shared by every row of the batch.
3. Sampled softmax on the kept labels; their expected counts are the first pass's,
   gathered with them (the correction follows the labels through the resampling),
   the true label keeps its own first-pass count; accidental hits are masked.
   T (`resampling_temperature`) is used only in step 2: the loss logits are the
   model's logits minus log expected count, never divided by T.

`ADAPTIVE_PER_ROW` names the former variant (each row keeps its own top-m of its
log-Q-corrected logits and the kept logits are divided by T), kept for comparison
(`losses.sampled_softmax_loss(adaptive_top_m=...)`).
"""

from __future__ import annotations

import tensorflow as tf

from models.retrieval import losses

ADAPTIVE_TAPAS = "tapas"  # published: batch-shared labels, T only for the resampling
ADAPTIVE_PER_ROW = "per_row"  # former: per-row top-m of corrected logits, loss logits / T
ADAPTIVE_SAMPLINGS = (ADAPTIVE_TAPAS, ADAPTIVE_PER_ROW)


def unique_log_expected_count(probs, num_tries: int) -> tf.Tensor:
    """log P(label in a unique sample of num_tries draws) = log(1 - (1 - q)^num_tries).

    Args:
        probs: [N] per-draw probabilities q (floored at losses.PROB_FLOOR).
        num_tries: draws with replacement before de-duplication.

    Returns:
        [N] float32 log expected counts, as TF's unique candidate samplers return.
    """
    q = tf.clip_by_value(tf.cast(probs, tf.float32), losses.PROB_FLOOR, 1.0)
    count = -tf.math.expm1(float(num_tries) * tf.math.log1p(-q))
    return tf.math.log(tf.maximum(count, losses.PROB_FLOOR))


def rank_resample(
    query, sampled_weights, num_resampled: int, resampling_temperature: float, temperature=1.0
):
    """Second pass: indices of the num_resampled sampled labels with the best batch score.

    Args:
        query: [B, D] query embeddings.
        sampled_weights: [M, D] vectors of the sampled labels.
        num_resampled: m, labels kept (at most M).
        resampling_temperature: T.
        temperature: the model's logit scale: logit(b, j) = q_b . w_j / temperature.

    Returns:
        (indices int32 [m] into the M labels, scores [M] = logsumexp_b(logit(b, j) / T)).
    """
    logits = tf.matmul(losses._float(query), losses._float(sampled_weights), transpose_b=True)
    logits = tf.stop_gradient(logits / temperature)  # [B, M]; selection only, no gradient
    scores = tf.reduce_logsumexp(logits / resampling_temperature, axis=0)  # [M]
    m = tf.minimum(num_resampled, tf.shape(scores)[0])
    return tf.math.top_k(scores, k=m, sorted=True).indices, scores


def tapas_sampled_softmax_loss(
    query,
    item_weights,
    positive_ids,
    sampled_ids,
    sampled_log_q,
    *,
    num_resampled: int,
    resampling_temperature: float = 1.0,
    temperature: float = 0.05,
    positive_log_q=None,
    remove_hits: bool = True,
    sample_weight=None,
) -> tf.Tensor:
    """TAPAS loss: rank-resample the sampled labels for the batch, then sampled softmax.

    Args:
        query: [B, D] query embeddings.
        item_weights: [V, D] item vectors (softmax weights).
        positive_ids: [B] int ids of the positives (rows of item_weights).
        sampled_ids: [M] int ids of the first pass (unique).
        sampled_log_q: [M] log expected count of each first-pass label.
        num_resampled: m, labels kept for the whole batch.
        resampling_temperature: T of the second pass only.
        temperature: the model's logit scale (q . w / temperature).
        positive_log_q: optional [B] log expected count of each positive.
        remove_hits: mask kept labels equal to the row's positive.
        sample_weight: optional [B] per-query weights.

    Returns:
        Scalar weighted mean of -log softmax([positive, kept labels])[positive].
    """
    sampled = tf.gather(losses._float(item_weights), sampled_ids)  # [M, D]
    kept, _ = rank_resample(query, sampled, num_resampled, resampling_temperature, temperature)
    return losses.sampled_softmax_loss(
        query,
        item_weights,
        positive_ids,
        tf.gather(sampled_ids, kept),
        tf.gather(losses._float(sampled_log_q), kept),
        temperature=temperature,
        positive_log_q=positive_log_q,
        remove_hits=remove_hits,
        sample_weight=sample_weight,
    )


def model_loss(model, query, ids, training) -> tf.Tensor:
    """RetrievalModel's sampled-softmax loss with TAPAS resampling (config.loss.adaptive_top_m > 0).

    Args:
        model: a RetrievalModel (its softmax sampler, catalog and candidate tower).
        query: [B, D] query embeddings.
        ids: [B] int64 positive item ids.
        training: passed to the candidate tower.
    """
    cfg, loss = model.config, model.config.loss
    draws, _ = model.softmax_sampler.sample_tf(loss.num_sampled)
    sampled, _ = tf.unique(draws)  # TF1 sampled uniquely; counts below are for that
    unique, local = tf.unique(tf.concat([ids, sampled], axis=0))
    weights = model.embed_items(unique, training)  # the needed rows of the [V, D] weights
    batch = tf.shape(ids)[0]
    probs = model._softmax_probs
    sampled_log_q = unique_log_expected_count(tf.gather(probs, sampled), loss.num_sampled)
    positive_log_q = unique_log_expected_count(tf.gather(probs, ids), loss.num_sampled)
    return tapas_sampled_softmax_loss(
        query,
        weights,
        local[:batch],
        local[batch:],
        sampled_log_q if cfg.negatives.log_q else tf.zeros_like(sampled_log_q),
        num_resampled=loss.adaptive_top_m,
        resampling_temperature=loss.adaptive_temperature,
        temperature=cfg.tower.temperature,
        positive_log_q=positive_log_q if cfg.negatives.log_q else None,
        remove_hits=cfg.negatives.remove_accidental_hits,
    )
