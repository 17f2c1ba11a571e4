"""The two-tower's batch losses, picked by the type of `config.loss`.

`batch_loss(config.loss, model, ...)` dispatches on the loss class
(functools.singledispatch): Listwise, the explicit losses (Pointwise,
TripletHinge, TripletLogistic) and SampledSoftmax each register their own
function. The pure math is `losses.py` (and `tapas.py`); here the model's
samplers, catalog and towers feed it. Negatives:
- listwise: the batch's other positives, plus `num_mixed_negatives` sampled from
  the catalog (uniform or count**0.75), each source with its own log-Q
  (`losses.mixed_log_q`), plus per-row explicit negatives when a mined file is set;
- explicit: `negatives.ratio` explicit negatives per positive;
- sampled softmax: `num_sampled` ids from a log-uniform or unigram sampler; the
  candidate tower's vectors of the sampled ids are the softmax weights.
Explicit negatives are mined items of the row's user with probability
`updates.mined_ratio` (when the user has any), otherwise easy ones from the sampler.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from models.retrieval import losses, tapas
from models.retrieval.config import (
    ExplicitLoss,
    Listwise,
    Loss,
    Pointwise,
    SampledSoftmax,
    TripletHinge,
    TripletLogistic,
)
from models.retrieval.layers import USER

TARGET_WEIGHT = "target_weight"  # [B] weight of each retrieval target (trainer.positive_rows)


@functools.singledispatch
def batch_loss(loss: Loss, model, query, positives, ids, features, training) -> tf.Tensor:
    """Scalar loss of a batch: query [B, D], positives [B, D], ids [B], features dict.

    Args:
        loss: the config's Loss; its class picks the function.
        model: the RetrievalModel (samplers, catalog, candidate tower, config).
        query: [B, D] unit query vectors.
        positives: [B, D] unit candidate vectors of the positives.
        ids: [B] int64 positive item ids.
        features: the transformed batch.
        training: passed to the towers.
    """
    raise TypeError(f"no batch loss for {type(loss).__name__}")


@batch_loss.register(Listwise)
def _listwise(loss: Listwise, model, query, positives, ids, features, training):
    cfg = model.config
    batch = tf.shape(ids)[0]
    cands, cand_ids = [positives], [ids]
    sampled_ids = tf.zeros([0], tf.int64)
    if loss.num_mixed_negatives:
        sampled_ids, _ = model.negative_sampler.sample_tf(loss.num_mixed_negatives)
        cands.append(model.embed_items(sampled_ids, training))
        cand_ids.append(sampled_ids)
    log_q = losses.mixed_log_q(
        tf.gather(model._item_probs, ids),
        batch,
        tf.gather(model._negative_probs, sampled_ids),
        loss.num_mixed_negatives,
    )
    if model._mined is not None:  # per-row explicit negatives as extra columns
        neg_ids, neg_log_q = explicit_negatives(model, features, ids)
        neg_ids = tf.reshape(neg_ids, [-1])
        cands.append(model.embed_items(neg_ids, training))
        cand_ids.append(neg_ids)
        log_q = tf.concat([log_q, tf.reshape(neg_log_q, [-1])], axis=0)
    hits = cfg.negatives.remove_accidental_hits
    return losses.listwise_loss(
        query,
        tf.concat(cands, axis=0),
        temperature=cfg.tower.temperature,
        log_q=log_q if cfg.negatives.log_q else None,
        positive_ids=ids if hits else None,
        candidate_ids=tf.concat(cand_ids, axis=0) if hits else None,
        num_hard_negatives=loss.num_hard_negatives,
        sample_weight=features.get(TARGET_WEIGHT),
    )


def explicit_negatives(model, features, ids):
    """negatives.ratio negatives per row: (ids [B, K], log expected count [B, K]).

    Each slot is one of the row's user's mined items with probability
    updates.mined_ratio (if the user has any; log count 0: no correction), else an
    easy item from the negative sampler (log count log(B * K * q)).
    """
    batch, k = tf.shape(ids)[0], model.config.negatives.ratio
    easy, easy_log_q = model.negative_sampler.sample_tf(batch * k)
    easy, easy_log_q = tf.reshape(easy, [batch, k]), tf.reshape(easy_log_q, [batch, k])
    if model._mined is None:
        return easy, easy_log_q
    mined_table = model._mined
    users = tf.clip_by_value(tf.cast(features[USER], tf.int64), 0, len(mined_table) - 1)
    rows = tf.gather(mined_table, users)  # [B, P]
    available = tf.reduce_sum(tf.cast(rows >= 0, tf.int64), axis=1, keepdims=True)  # [B, 1]
    u = model._random.generator.uniform([batch, k, 2])
    pick = tf.minimum(tf.cast(u[..., 1] * tf.cast(available, tf.float32), tf.int64), available - 1)
    mined = tf.gather(rows, tf.maximum(pick, 0), batch_dims=1)  # [B, K]
    use = tf.logical_and(u[..., 0] < model.config.updates.mined_ratio, available > 0)
    return tf.where(use, mined, easy), tf.where(use, 0.0, easy_log_q)


@batch_loss.register(ExplicitLoss)
def _explicit(loss: ExplicitLoss, model, query, positives, ids, features, training):
    """Pointwise and triplet losses over [B] positives and [B, K] explicit negatives."""
    neg_ids, _ = explicit_negatives(model, features, ids)
    batch, k = tf.shape(neg_ids)[0], tf.shape(neg_ids)[1]
    negatives = tf.reshape(model.embed_items(tf.reshape(neg_ids, [-1]), training), [batch, k, -1])
    pos_cos = tf.reduce_sum(query * positives, axis=-1)
    neg_cos = tf.einsum("bd,bkd->bk", query, negatives)
    if model.config.negatives.remove_accidental_hits:  # a sampled positive is no negative
        neg_cos = tf.where(tf.equal(neg_ids, ids[:, tf.newaxis]), -1.0, neg_cos)
    return pair_loss(loss, pos_cos, neg_cos)


@functools.singledispatch
def pair_loss(loss: ExplicitLoss, pos_cos, neg_cos) -> tf.Tensor:
    """An explicit loss of pos_cos [B] and neg_cos [B, K], by the loss class."""
    raise TypeError(f"no explicit loss for {type(loss).__name__}")


@pair_loss.register(Pointwise)
def _pointwise(loss: Pointwise, pos_cos, neg_cos):
    return losses.pointwise_loss(pos_cos, neg_cos, scale=loss.scale)


@pair_loss.register(TripletHinge)
def _triplet_hinge(loss: TripletHinge, pos_cos, neg_cos):
    return losses.triplet_hinge_loss(pos_cos, neg_cos, margin=loss.margin)


@pair_loss.register(TripletLogistic)
def _triplet_logistic(loss: TripletLogistic, pos_cos, neg_cos):
    return losses.triplet_logistic_loss(pos_cos, neg_cos, scale=loss.scale)


@batch_loss.register(SampledSoftmax)
def _sampled_softmax(loss: SampledSoftmax, model, query, positives, ids, features, training):
    """YouTube-DNN sampled softmax; only the needed rows of the item matrix are computed."""
    if loss.adaptive_top_m and loss.adaptive_sampling == tapas.ADAPTIVE_TAPAS:
        return tapas.model_loss(model, query, ids, training)
    cfg = model.config
    log_q = cfg.negatives.log_q
    sampled, sampled_log_q = model.softmax_sampler.sample_tf(loss.num_sampled)
    unique, local = tf.unique(tf.concat([ids, sampled], axis=0))
    weights = model.embed_items(unique, training)  # rows of the [V, D] softmax weights
    batch = tf.shape(ids)[0]
    positive_q = tf.maximum(tf.gather(model._softmax_probs, ids), losses.PROB_FLOOR)
    positive_log_q = tf.math.log(float(loss.num_sampled) * positive_q)
    return losses.sampled_softmax_loss(
        query,
        weights,
        local[:batch],
        local[batch:],
        sampled_log_q if log_q else tf.zeros_like(sampled_log_q),
        temperature=cfg.tower.temperature,
        positive_log_q=positive_log_q if log_q else None,
        remove_hits=cfg.negatives.remove_accidental_hits,
        adaptive_top_m=loss.adaptive_top_m,
        adaptive_temperature=loss.adaptive_temperature,
    )
