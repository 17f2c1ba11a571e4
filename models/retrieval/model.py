"""The two-tower retrieval model: a tfrs.Model whose compute_loss dispatches on config.loss.

Scores are temperature-scaled cosines: both towers output unit vectors, listwise
and sampled-softmax logits are q . c / temperature (pointwise / triplet losses
use their own scale). Negatives:
- listwise: the batch's other positives, plus `num_mixed_negatives` sampled
  from the catalog (uniform or count**0.75), each source with its own log-Q
  (`losses.mixed_log_q`), plus per-row explicit negatives when a mined file is set;
- pointwise / triplet: `negative_ratio` explicit negatives per positive;
- sampled_softmax: `num_sampled` ids from a log-uniform or unigram sampler; the
  candidate tower's vectors of the sampled ids are the softmax weights.
Explicit negatives are mined items of the row's user with probability
`mined_ratio` (when the user has any), otherwise easy ones from the sampler.
Ids that come without features are embedded through `ItemCatalog`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from models.common import embeddings as E
from models.retrieval import losses, samplers, tapas, user_vectors
from models.retrieval.config import RetrievalConfig
from models.retrieval.layers import (
    AGE,
    GENDER,
    GENRE,
    GENRES,
    HISTORY,
    ITEM,
    OCCUPATION,
    USER,
    CandidateTower,
    FixedEmbedding,
    ItemCatalog,
    QueryTower,
)
from models.retrieval.sequence import SELF_ATTENTION, SequenceEncoder
from schemas import features as F

TRIPLET = {"triplet_hinge", "triplet_logistic"}
TARGET_WEIGHT = "target_weight"  # [B] weight of each retrieval target (trainer.positive_rows)


class _Randomness:
    """Holds a tf.random.Generator out of Keras' weight tracking."""

    def __init__(self, seed: int):
        self.generator = tf.random.Generator.from_seed(seed)


class RetrievalModel(tfrs.Model):
    """Two towers sharing the item embedding; `compute_loss` per `config.loss`.

    Args:
        config: the RetrievalConfig.
        query_tower: QueryTower.
        candidate_tower: CandidateTower.
        item_counts: [V] positive count per item id (Transform's frequency vocabulary).
        catalog: ItemCatalog with the features of every item id.
        mined: optional [num_user_ids, P] mined negative item ids per user id, -1 padded.
    """

    def __init__(self, config, query_tower, candidate_tower, item_counts, catalog, mined=None):
        super().__init__()
        self.config = config
        self.query_tower, self.candidate_tower = query_tower, candidate_tower
        self.catalog = catalog
        self.frozen_variables: list = []  # zero gradients while step < config.freeze_steps
        raw = np.asarray(item_counts, np.float64)
        counts = np.maximum(raw, 1.0)  # ids never seen as positives count as 1
        self.item_probs = counts / counts.sum()  # data distribution of in-batch positives
        self._item_probs = tf.constant(self.item_probs, tf.float32)
        num_vocab = max(1, len(raw) - F.ITEM_OOV_BUCKETS)  # OOV buckets are never sampled
        vocab_counts = raw[:num_vocab] if raw[:num_vocab].any() else np.ones(num_vocab)
        unigram = samplers.unigram_probs(vocab_counts, config.unigram_power)
        easy = np.ones(num_vocab) if config.negative_distribution == "uniform" else unigram
        self.negative_sampler = samplers.CandidateSampler(easy, seed=config.seed)
        softmax = unigram
        if config.softmax_sampler == "log_uniform":
            softmax = samplers.log_uniform_probs(num_vocab)
        self.softmax_sampler = samplers.CandidateSampler(softmax, seed=config.seed + 1)
        self._negative_probs = _padded(self.negative_sampler.probs, len(raw))
        self._softmax_probs = _padded(self.softmax_sampler.probs, len(raw))
        self._mined = None if mined is None else tf.constant(mined, tf.int64)
        self._random = _Randomness(config.seed + 2)

    def embed_items(self, ids: tf.Tensor, training=None) -> tf.Tensor:
        """Candidate embeddings [N, D] of item ids [N], features from the catalog."""
        return self.candidate_tower(self.catalog.lookup(ids), training=training)

    def score(self, query: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
        """Temperature-scaled cosines [B, N] of queries [B, D] and candidates [N, D]."""
        return tf.matmul(query, candidates, transpose_b=True) / self.config.temperature

    def compute_loss(self, features, training=False) -> tf.Tensor:
        """Scalar loss on a batch of transformed positive examples (dict of [B, ...])."""
        weight = self.config.history.position_targets
        positional = bool(weight) and self.query_tower.history_encoder is not None
        valid = self._position_select(features) if positional else None
        select = None if valid is None else tf.pad(valid, [[0, 0], [0, 1]])  # last: no next
        query, prefix = self.query_tower.queries(features, select, training=training)
        positives = self.candidate_tower(features, training=training)
        ids = tf.cast(features[ITEM], tf.int64)
        loss = self.config.loss
        if loss == "listwise":
            main = self._listwise(query, positives, ids, features, training)
        elif loss == "sampled_softmax":
            main = self._sampled_softmax(query, ids, training)
        else:
            main = self._explicit(query, positives, ids, features, training)
        if positional:
            main += weight * self._position_loss(features, training, valid, prefix)
        return main

    def _position_select(self, features) -> tf.Tensor:
        """[B, L-1] bool: history positions whose next item is a target (a next item
        exists, kept with probability position_sample)."""
        _, mask = self.query_tower.history(features)
        valid = mask[:, 1:] > 0
        share = self.config.history.position_sample
        if share < 1.0:
            valid &= self._random.generator.uniform(tf.shape(valid)) < share
        return valid

    def _position_loss(self, features, training, valid=None, q=None):
        """SASRec's every-position loss: each selected history prefix's query q [P, D]
        predicts the next history item, softmax over the batch's distinct next items
        (log-Q corrected by their positive frequency, as the in-batch positives are).
        compute_loss passes valid [B, L-1] and q from the encoder pass that also gave
        the batch's queries; without them they are computed here."""
        if valid is None:
            valid = self._position_select(features)
            select = tf.pad(valid, [[0, 0], [0, 1]])
            q = self.query_tower.prefix_queries(features, select, training=training)
        history, _ = self.query_tower.history(features)
        targets = tf.boolean_mask(history[:, 1:], valid)  # [P]
        unique, label = tf.unique(targets)
        logits = self.score(q, self.embed_items(unique, training))
        if self.config.log_q:
            q_prob = tf.maximum(tf.gather(self._item_probs, unique), losses.PROB_FLOOR)
            logits -= tf.math.log(q_prob)[tf.newaxis, :]
        per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(label, logits)
        return tf.reduce_sum(per_row) / tf.maximum(tf.cast(tf.size(per_row), tf.float32), 1.0)

    def _listwise(self, query, positives, ids, features, training):
        cfg = self.config
        batch = tf.shape(ids)[0]
        cands, cand_ids = [positives], [ids]
        sampled_ids = tf.zeros([0], tf.int64)
        if cfg.num_mixed_negatives:
            sampled_ids, _ = self.negative_sampler.sample_tf(cfg.num_mixed_negatives)
            cands.append(self.embed_items(sampled_ids, training))
            cand_ids.append(sampled_ids)
        log_q = losses.mixed_log_q(
            tf.gather(self._item_probs, ids),
            batch,
            tf.gather(self._negative_probs, sampled_ids),
            cfg.num_mixed_negatives,
        )
        if self._mined is not None:  # per-row explicit negatives as extra columns
            neg_ids, neg_log_q = self._explicit_negatives(features, ids)
            neg_ids = tf.reshape(neg_ids, [-1])
            cands.append(self.embed_items(neg_ids, training))
            cand_ids.append(neg_ids)
            log_q = tf.concat([log_q, tf.reshape(neg_log_q, [-1])], axis=0)
        hits = cfg.remove_accidental_hits
        return losses.listwise_loss(
            query,
            tf.concat(cands, axis=0),
            temperature=cfg.temperature,
            log_q=log_q if cfg.log_q else None,
            positive_ids=ids if hits else None,
            candidate_ids=tf.concat(cand_ids, axis=0) if hits else None,
            num_hard_negatives=cfg.num_hard_negatives,
            sample_weight=features.get(TARGET_WEIGHT),
        )

    def _explicit_negatives(self, features, ids):
        """negative_ratio negatives per row: (ids [B, K], log expected count [B, K]).

        Each slot is one of the row's user's mined items with probability
        mined_ratio (if the user has any; log count 0: no correction), else an
        easy item from the negative sampler (log count log(B * K * q)).
        """
        cfg = self.config
        batch, k = tf.shape(ids)[0], cfg.negative_ratio
        easy, easy_log_q = self.negative_sampler.sample_tf(batch * k)
        easy, easy_log_q = tf.reshape(easy, [batch, k]), tf.reshape(easy_log_q, [batch, k])
        if self._mined is None:
            return easy, easy_log_q
        users = tf.clip_by_value(tf.cast(features[USER], tf.int64), 0, len(self._mined) - 1)
        rows = tf.gather(self._mined, users)  # [B, P]
        available = tf.reduce_sum(tf.cast(rows >= 0, tf.int64), axis=1, keepdims=True)  # [B, 1]
        u = self._random.generator.uniform([batch, k, 2])
        pick = tf.minimum(
            tf.cast(u[..., 1] * tf.cast(available, tf.float32), tf.int64), available - 1
        )
        mined = tf.gather(rows, tf.maximum(pick, 0), batch_dims=1)  # [B, K]
        use = tf.logical_and(u[..., 0] < cfg.mined_ratio, available > 0)
        return tf.where(use, mined, easy), tf.where(use, 0.0, easy_log_q)

    def _explicit(self, query, positives, ids, features, training):
        """Pointwise and triplet losses over [B] positives and [B, K] explicit negatives."""
        cfg = self.config
        neg_ids, _ = self._explicit_negatives(features, ids)
        batch, k = tf.shape(neg_ids)[0], tf.shape(neg_ids)[1]
        negatives = tf.reshape(
            self.embed_items(tf.reshape(neg_ids, [-1]), training), [batch, k, -1]
        )
        pos_cos = tf.reduce_sum(query * positives, axis=-1)
        neg_cos = tf.einsum("bd,bkd->bk", query, negatives)
        if cfg.remove_accidental_hits:  # a sampled copy of the positive is not a negative
            neg_cos = tf.where(tf.equal(neg_ids, ids[:, tf.newaxis]), -1.0, neg_cos)
        if cfg.loss == "pointwise":
            return losses.pointwise_loss(pos_cos, neg_cos, scale=cfg.pointwise_scale)
        if cfg.loss == "triplet_hinge":
            return losses.triplet_hinge_loss(pos_cos, neg_cos, margin=cfg.triplet_margin)
        return losses.triplet_logistic_loss(pos_cos, neg_cos, scale=cfg.triplet_scale)

    def _sampled_softmax(self, query, ids, training):
        """YouTube-DNN sampled softmax; only the needed rows of the item matrix are computed."""
        cfg = self.config
        if cfg.adaptive_top_m and cfg.adaptive_sampling == tapas.ADAPTIVE_TAPAS:
            return tapas.model_loss(self, query, ids, training)
        sampled, sampled_log_q = self.softmax_sampler.sample_tf(cfg.num_sampled)
        unique, local = tf.unique(tf.concat([ids, sampled], axis=0))
        weights = self.embed_items(unique, training)  # rows of the [V, D] softmax weights
        batch = tf.shape(ids)[0]
        positive_q = tf.maximum(tf.gather(self._softmax_probs, ids), losses.PROB_FLOOR)
        positive_log_q = tf.math.log(float(cfg.num_sampled) * positive_q)
        return losses.sampled_softmax_loss(
            query,
            weights,
            local[:batch],
            local[batch:],
            sampled_log_q if cfg.log_q else tf.zeros_like(sampled_log_q),
            temperature=cfg.temperature,
            positive_log_q=positive_log_q if cfg.log_q else None,
            remove_hits=cfg.remove_accidental_hits,
            adaptive_top_m=cfg.adaptive_top_m,
            adaptive_temperature=cfg.adaptive_temperature,
        )

    def train_step(self, inputs):
        """tfrs.Model.train_step, with gradients of `frozen_variables` zeroed during the
        first config.freeze_steps steps (with zero gradients Adam/Adagrad do not move)."""
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization_loss = tf.add_n([tf.constant(0.0)] + list(self.losses))
            total_loss = loss + regularization_loss
        variables = self.trainable_variables
        gradients = tape.gradient(total_loss, variables)
        if self.frozen_variables and self.config.freeze_steps:
            open_ = tf.cast(self.optimizer.iterations >= self.config.freeze_steps, tf.float32)
            frozen = {v.ref() for v in self.frozen_variables}
            gradients = [
                _scale(g, open_) if v.ref() in frozen else g
                for g, v in zip(gradients, variables, strict=True)
            ]
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return {"loss": loss, "regularization_loss": regularization_loss, "total_loss": total_loss}


def _padded(probs: np.ndarray, size: int) -> tf.Tensor:
    """probs [n] zero-padded to [size] (OOV buckets are never sampled), float32."""
    out = np.zeros(max(size, len(probs)), np.float32)
    out[: len(probs)] = probs
    return tf.constant(out)


def _scale(gradient, factor):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return None if gradient is None else gradient * factor


def dummy_features(batch: int = 2) -> dict[str, tf.Tensor]:
    """A minimal transformed batch (id 0 everywhere, empty history) to build the towers."""
    zeros = tf.zeros([batch], tf.int64)
    out = {name: zeros for name in (ITEM, USER, GENRE, GENDER, OCCUPATION, AGE)}
    out.update({F.HOUR_OF_DAY: zeros, F.DAY_OF_WEEK: zeros})
    out[HISTORY] = -tf.ones([batch, F.HISTORY_LENGTH], tf.int64)
    out[F.HISTORY_MASK] = tf.zeros([batch, F.HISTORY_LENGTH])
    out[GENRES] = -tf.ones([batch, 1], tf.int64)
    out[F.YEAR_NORMALIZED] = tf.zeros([batch])
    return out


def build_model(
    config: RetrievalConfig,
    vocab_sizes: dict[str, int],
    item_counts,
    *,
    catalog: ItemCatalog | None = None,
    mined: np.ndarray | None = None,
    pretrained: np.ndarray | None = None,
    history_length: int = F.HISTORY_LENGTH,
    pretrained_users: np.ndarray | None = None,
) -> RetrievalModel:
    """Builds and compiles the model.

    Args:
        config: hyperparameters.
        vocab_sizes: rows per id feature (`models.common.data.vocab_sizes`).
        item_counts: [V] positive counts per item id (`data.item_positive_counts`).
        catalog: item features per item id (default: ids only).
        mined: optional [num_user_ids, P] mined negatives (`updates.load_mined_negatives`).
        pretrained: optional [V, P] item vectors, used per config.pretrained_mode.
        history_length: L of the history (Transform's; sizes the encoder's positions).
        pretrained_users: optional [U, P] user vectors, likewise (`user_vectors.py`).
    """
    num_items, dim = vocab_sizes[F.ITEM_ID], config.embedding_dim
    tf_keras.utils.set_random_seed(config.seed)
    item_emb = E.make_embedding(config.item_embedding, num_items, dim, "item_embedding")
    user_emb = E.make_embedding(
        config.user_embedding, vocab_sizes[F.USER_ID], dim, "user_embedding"
    )
    fixed = None
    if pretrained is not None and config.pretrained_mode == "input":
        fixed = FixedEmbedding(num_items, pretrained.shape[1], name="pretrained_items")
    head = {
        "hidden_units": (config.tower_width,) * config.tower_depth,
        "output_dim": config.output_dim,
        "feature_dim": config.feature_dim,
    }
    sizes = {GENDER: F.GENDER, OCCUPATION: F.OCCUPATION, AGE: F.AGE}
    sizes = {k: vocab_sizes[v] for k, v in sizes.items()}
    sizes.update({n: vocab_sizes[n] for n in (F.HOUR_OF_DAY, F.DAY_OF_WEEK)})
    encoder = None
    if config.history.kind == SELF_ATTENTION:
        spec = config.history
        encoder = SequenceEncoder(
            spec.num_layers, spec.num_heads, spec.dropout, history_length, name="history_encoder"
        )
    users = user_vectors.fixed_table(config, pretrained_users)  # "input" mode only
    extra = {} if users is None else {"pretrained_users": users}
    query = QueryTower(
        item_emb,
        user_emb,
        sizes,
        pretrained=fixed,
        history_encoder=encoder,
        name="query_tower",
        **head,
        **extra,
    )
    candidate = CandidateTower(
        item_emb, vocab_sizes[F.PRIMARY_GENRE], pretrained=fixed, name="candidate_tower", **head
    )
    catalog = catalog or ItemCatalog.empty(num_items)
    model = RetrievalModel(config, query, candidate, item_counts, catalog, mined)
    query(dummy_features()), candidate(dummy_features())  # creates every weight now
    if pretrained is not None:
        (fixed or item_emb).set_weights([np.asarray(pretrained, np.float32)])
        if fixed is None and config.freeze_steps:
            model.frozen_variables = list(item_emb.trainable_weights)
    if pretrained_users is not None:
        user_vectors.load(model, users or user_emb, pretrained_users)
    compile_model(model)
    return model


def compile_model(model: RetrievalModel) -> None:
    """(Re)compiles with the configured optimizer (after changing `trainable` flags too)."""
    cfg = model.config
    optimizer = tf_keras.optimizers.Adam if cfg.optimizer == "adam" else tf_keras.optimizers.Adagrad
    model.compile(optimizer=optimizer(learning_rate=cfg.learning_rate))
