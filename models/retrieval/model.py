"""The two-tower retrieval model: a tfrs.Model whose compute_loss dispatches on the loss class.

Scores are temperature-scaled cosines: both towers output unit vectors, listwise
and sampled-softmax logits are q . c / temperature (pointwise / triplet losses
use their own scale). The batch losses and their negatives are `objectives.py`,
picked by the type of `config.loss`. Ids that come without features are embedded
through `ItemCatalog`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from models.common import distribute
from models.common import embeddings as E
from models.retrieval import losses, objectives, samplers, user_vectors
from models.retrieval.config import RetrievalConfig, SampledSoftmax
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

TARGET_WEIGHT = objectives.TARGET_WEIGHT  # [B] weight of each retrieval target


class _Randomness:
    """Holds a tf.random.Generator out of Keras' weight tracking."""

    def __init__(self, seed: int):
        self.generator = tf.random.Generator.from_seed(seed)


class RetrievalModel(tfrs.Model):
    """Two towers sharing the item embedding; `compute_loss` per the type of `config.loss`.

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
        self.frozen_variables: list = []  # zero gradients while step < freeze_steps
        raw = np.asarray(item_counts, np.float64)
        counts = np.maximum(raw, 1.0)  # ids never seen as positives count as 1
        self.item_probs = counts / counts.sum()  # data distribution of in-batch positives
        self._item_probs = tf.constant(self.item_probs, tf.float32)
        num_vocab = max(1, len(raw) - F.ITEM_OOV_BUCKETS)  # OOV buckets are never sampled
        vocab_counts = raw[:num_vocab] if raw[:num_vocab].any() else np.ones(num_vocab)
        negatives, seed = config.negatives, config.training.seed
        unigram = samplers.unigram_probs(vocab_counts, negatives.unigram_power)
        easy = np.ones(num_vocab) if negatives.distribution == "uniform" else unigram
        self.negative_sampler = samplers.CandidateSampler(easy, seed=seed)
        loss = config.loss
        softmax = unigram
        if not isinstance(loss, SampledSoftmax) or loss.sampler == "log_uniform":
            softmax = samplers.log_uniform_probs(num_vocab)
        self.softmax_sampler = samplers.CandidateSampler(softmax, seed=seed + 1)
        self._negative_probs = _padded(self.negative_sampler.probs, len(raw))
        self._softmax_probs = _padded(self.softmax_sampler.probs, len(raw))
        self._mined = None if mined is None else tf.constant(mined, tf.int64)
        self._random = _Randomness(seed + 2)

    def embed_items(self, ids: tf.Tensor, training=None) -> tf.Tensor:
        """Candidate embeddings [N, D] of item ids [N], features from the catalog."""
        return self.candidate_tower(self.catalog.lookup(ids), training=training)

    def score(self, query: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
        """Temperature-scaled cosines [B, N] of queries [B, D] and candidates [N, D]."""
        return tf.matmul(query, candidates, transpose_b=True) / self.config.tower.temperature

    def compute_loss(self, features, training=False) -> tf.Tensor:
        """Scalar loss on a batch of transformed positive examples (dict of [B, ...])."""
        weight = self.config.tower.history.position_targets
        positional = bool(weight) and self.query_tower.history_encoder is not None
        valid = self._position_select(features) if positional else None
        select = None if valid is None else tf.pad(valid, [[0, 0], [0, 1]])  # last: no next
        query, prefix = self.query_tower.queries(features, select, training=training)
        positives = self.candidate_tower(features, training=training)
        ids = tf.cast(features[ITEM], tf.int64)
        loss = self.config.loss
        main = objectives.batch_loss(loss, self, query, positives, ids, features, training)
        if positional:
            main += weight * self._position_loss(features, training, valid, prefix)
        return main

    def _position_select(self, features) -> tf.Tensor:
        """[B, L-1] bool: history positions whose next item is a target (a next item
        exists, kept with probability position_sample)."""
        _, mask = self.query_tower.history(features)
        valid = mask[:, 1:] > 0
        share = self.config.tower.history.position_sample
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
        if self.config.negatives.log_q:
            q_prob = tf.maximum(tf.gather(self._item_probs, unique), losses.PROB_FLOOR)
            logits -= tf.math.log(q_prob)[tf.newaxis, :]
        # -log softmax by hand: a step whose position_sample kept no pair has [0, 0]
        # logits, which sparse_softmax_cross_entropy_with_logits refuses; this gives 0.
        per_row = tf.reduce_logsumexp(logits, axis=1) - tf.gather(logits, label, batch_dims=1)
        return tf.reduce_sum(per_row) / tf.maximum(tf.cast(tf.size(per_row), tf.float32), 1.0)

    # Nothing here needs AutoGraph (no Python control flow on tensors); converting this
    # code, TFRS's and tf_keras' took 20-25 s of the first epoch (bench: trainer at 100K).
    @tf.autograph.experimental.do_not_convert
    def train_step(self, inputs):
        """tfrs.Model.train_step, with gradients of `frozen_variables` zeroed during the
        first embeddings.freeze_steps steps (with zero gradients Adam/Adagrad do not move)."""
        # Gradients of loss / replicas: the optimizer sums the replicas' gradients.
        gradients, variables, losses = distribute.scaled_gradients(self, inputs)
        freeze_steps = self.config.embeddings.freeze_steps
        if self.frozen_variables and freeze_steps:
            open_ = tf.cast(self.optimizer.iterations >= freeze_steps, tf.float32)
            frozen = {v.ref() for v in self.frozen_variables}
            gradients = [
                _scale(g, open_) if v.ref() in frozen else g
                for g, v in zip(gradients, variables, strict=True)
            ]
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return losses

    @tf.autograph.experimental.do_not_convert
    def test_step(self, inputs):
        return super().test_step(inputs)


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
        pretrained: optional [V, P] item vectors, used per embeddings.pretrained_mode.
        history_length: L of the history (Transform's; sizes the encoder's positions).
        pretrained_users: optional [U, P] user vectors, likewise (`user_vectors.py`).
    """
    tower, embeddings = config.tower, config.embeddings
    num_items, dim = vocab_sizes[F.ITEM_ID], tower.embedding_dim
    tf_keras.utils.set_random_seed(config.training.seed)
    item_emb = E.make_embedding(embeddings.item, num_items, dim, "item_embedding")
    user_emb = E.make_embedding(embeddings.user, vocab_sizes[F.USER_ID], dim, "user_embedding")
    fixed = None
    if pretrained is not None and embeddings.pretrained_mode == "input":
        fixed = FixedEmbedding(num_items, pretrained.shape[1], name="pretrained_items")
    head = {
        "hidden_units": (tower.width,) * tower.depth,
        "output_dim": tower.output_dim,
        "feature_dim": tower.feature_dim,
    }
    sizes = {GENDER: F.GENDER, OCCUPATION: F.OCCUPATION, AGE: F.AGE}
    sizes = {k: vocab_sizes[v] for k, v in sizes.items()}
    sizes.update({n: vocab_sizes[n] for n in (F.HOUR_OF_DAY, F.DAY_OF_WEEK)})
    encoder = None
    if tower.history.kind == SELF_ATTENTION:
        spec = tower.history
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
        if fixed is None and embeddings.freeze_steps:
            model.frozen_variables = list(item_emb.trainable_weights)
    if pretrained_users is not None:
        user_vectors.load(model, users or user_emb, pretrained_users)
    compile_model(model)
    return model


def compile_model(model: RetrievalModel) -> None:
    """(Re)compiles with the configured optimizer (after changing `trainable` flags too)."""
    cfg = model.config.training
    optimizer = tf_keras.optimizers.Adam if cfg.optimizer == "adam" else tf_keras.optimizers.Adagrad
    ema = {"use_ema": True, "ema_momentum": cfg.ema_momentum} if cfg.ema_momentum else {}
    model.compile(optimizer=optimizer(learning_rate=cfg.learning_rate, **ema))
