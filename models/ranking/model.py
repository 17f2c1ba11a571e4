"""The DIN ranker (Zhou et al. 2018) as a `tfrs.Model`, and the base DNN by config switch.

Inputs are Transform's outputs (models/preprocessing.py). The candidate item and the
history items share one item table; the candidate's genre and the history genres share
one genre table. The user side (profile embeddings, history keys) is computed once per
row; the candidate side may carry an extra axis N, so one row can score N candidates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from models.common import distribute
from models.common.embeddings import FullEmbedding, make_embedding
from models.common.history import last_state, recency_positions
from models.ranking.config import ATTENTION, RankingConfig
from models.ranking.layers import MLP, LocalActivationUnit, MaskedMeanPooling
from schemas import features as F

T = F.transformed_name
# Small categorical features of the user and the request: (vocab_sizes key, input key).
PROFILE_FEATURES = (
    (F.GENDER, T(F.GENDER)),
    (F.OCCUPATION, T(F.OCCUPATION)),
    (F.AGE, T(F.AGE)),
    (F.HOUR_OF_DAY, F.HOUR_OF_DAY),
    (F.DAY_OF_WEEK, F.DAY_OF_WEEK),
)
# Every embedding table and the transformed features that look ids up in it.
TABLE_INPUTS = {
    F.ITEM_ID: (T(F.ITEM_ID), T(F.HISTORY_ITEM_IDS)),
    F.PRIMARY_GENRE: (T(F.PRIMARY_GENRE), T(F.HISTORY_GENRES)),
    F.USER_ID: (T(F.USER_ID),),
    **{name: (key,) for name, key in PROFILE_FEATURES},
}
USER_KEYS = (T(F.USER_ID), *(key for _, key in PROFILE_FEATURES))
HISTORY_KEYS = (T(F.HISTORY_ITEM_IDS), T(F.HISTORY_GENRES), F.HISTORY_MASK)
ITEM_KEYS = (T(F.ITEM_ID), T(F.PRIMARY_GENRE), F.YEAR_NORMALIZED)
# Rows of the recency table (RankingConfig.recency_positions): a longer history's older
# items share the last row.
RECENCY_ROWS = 64


class RankingModel(tfrs.Model):
    """DIN (pooling="attention") or the base DNN (pooling="mean") over transformed features."""

    def __init__(
        self,
        config: RankingConfig,
        vocab_sizes: Mapping[str, int],
        feature_counts: Mapping[str, np.ndarray] | None = None,
        **kwargs,
    ):
        """Args:
        config: hyperparameters.
        vocab_sizes: rows per table (models.common.data.vocab_sizes), keyed as TABLE_INPUTS.
        feature_counts: occurrences of every id in the training data, per table
            ([rows]); the mini-batch aware regularisation divides by them. None: all 1.
        """
        super().__init__(**kwargs)
        self.config, self.vocab_sizes = config, dict(vocab_sizes)
        c, n = config, self.vocab_sizes
        self.tables = {
            F.ITEM_ID: make_embedding(c.item_embedding, n[F.ITEM_ID], c.item_dim, "item_emb"),
            F.PRIMARY_GENRE: FullEmbedding(n[F.PRIMARY_GENRE], c.genre_dim, name="genre_emb"),
            **{
                name: FullEmbedding(n[name], c.feature_dim, name=f"{name}_emb")
                for name, _ in PROFILE_FEATURES
            },
        }
        if c.user_dim:
            self.tables[F.USER_ID] = make_embedding(
                c.user_embedding, n[F.USER_ID], c.user_dim, "user_emb"
            )
        # Not in self.tables: the mini-batch aware regularisation is over id tables only.
        self.recency = (
            FullEmbedding(RECENCY_ROWS, c.item_dim + c.genre_dim, name="recency_emb")
            if c.recency_positions
            else None
        )
        self._inverse_counts = {
            name: tf.constant(
                1.0 / np.maximum(np.asarray(feature_counts[name], np.float64), 1.0)
                if feature_counts is not None
                else np.ones(n[name]),
                tf.float32,
            )
            for name in self.tables
        }
        act = dict(activation=c.activation, epsilon=c.dice_epsilon, momentum=c.dice_momentum)
        if c.pooling == ATTENTION:
            self.pooling = LocalActivationUnit(
                c.attention_units, softmax=c.attention_softmax, name="attention", **act
            )
        else:
            self.pooling = MaskedMeanPooling(name="mean_pooling")
        self.head = MLP(c.head_units, dropout=c.dropout, name="head", **act)
        self.logit = tf_keras.layers.Dense(1, name="logit")
        # Per-example losses, averaged here: a distribution strategy refuses AUTO reduction.
        self.bce = tf_keras.losses.BinaryCrossentropy(
            from_logits=True, reduction=tf_keras.losses.Reduction.NONE
        )
        self.bce_metric = tf_keras.metrics.Mean(name="bce")
        self.auc = tf_keras.metrics.AUC(name="auc")
        self.mba = tf_keras.metrics.Mean(name="mba")

    @property
    def weighted_layers(self) -> list[tf_keras.layers.Layer]:
        """Every layer that holds weights: the id tables, then the rest."""
        layers = [*self.tables.values(), self.pooling, self.head, self.logit]
        return layers + ([self.recency] if self.recency is not None else [])

    @property
    def model_weights(self) -> list[tf.Variable]:
        """Every layer weight (Dice moving statistics included), without metric variables."""
        return [w for layer in self.weighted_layers for w in layer.weights]

    def encode_user(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The per-row part: profile vector [B, d_user], history keys [B, L, d_key], mask
        [B, L], and with config.last_item the most recent item's key [B, d_key] (0: none)."""
        profile = [self.tables[name](features[key]) for name, key in PROFILE_FEATURES]
        if F.USER_ID in self.tables:
            profile.append(self.tables[F.USER_ID](features[T(F.USER_ID)]))
        keys = tf.concat(
            [
                self.tables[F.ITEM_ID](features[T(F.HISTORY_ITEM_IDS)]),
                self.tables[F.PRIMARY_GENRE](features[T(F.HISTORY_GENRES)]),
            ],
            axis=-1,
        )
        mask = tf.cast(features[F.HISTORY_MASK], tf.float32)
        user = {"profile": tf.concat(profile, axis=-1), "mask": mask}
        if self.config.last_item:
            user["last"] = last_state(keys, mask)
        if self.recency is not None:  # padding's recency is -1: a zero row
            recency = tf.minimum(recency_positions(mask), RECENCY_ROWS - 1)
            keys += self.recency(recency)
        user["keys"] = keys
        return user

    def encode_items(self, features: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """(attention query [..., d_key], extra item features [..., 1]); ... is [B] or [B, N]."""
        query = tf.concat(
            [
                self.tables[F.ITEM_ID](features[T(F.ITEM_ID)]),
                self.tables[F.PRIMARY_GENRE](features[T(F.PRIMARY_GENRE)]),
            ],
            axis=-1,
        )
        return query, tf.cast(features[F.YEAR_NORMALIZED], tf.float32)[..., tf.newaxis]

    def score(self, user: Mapping[str, tf.Tensor], query, extra, training=None) -> tf.Tensor:
        """Logits [B] (query [B, d]) or [B, N] (query [B, N, d]) from encode_user/encode_items."""
        if isinstance(self.pooling, LocalActivationUnit):
            # A frozen layer (incremental updates) runs as at inference: Dice keeps its statistics.
            pooling_training = training and self.pooling.trainable
            interest, _ = self.pooling(
                (query, user["keys"], user["mask"]), training=pooling_training
            )
        else:
            interest = self.pooling((user["keys"], user["mask"]))
        profile, last = user["profile"], user.get("last")
        if query.shape.rank == 3:  # [B, N, d]: broadcast the per-row parts over candidates
            n = tf.shape(query)[1]
            profile = tf.repeat(profile[:, tf.newaxis], n, axis=1)
            if interest.shape.rank == 2:
                interest = tf.repeat(interest[:, tf.newaxis], n, axis=1)
            if last is not None:
                last = tf.repeat(last[:, tf.newaxis], n, axis=1)
        parts = [profile, query, extra, interest]
        x = tf.concat(parts + ([last, query * last] if last is not None else []), axis=-1)
        head = self.head(x, training=training and self.head.trainable)
        return tf.squeeze(self.logit(head), -1)

    def logits(self, features: Mapping[str, tf.Tensor], training=None) -> tf.Tensor:
        """Logits [B] of transformed features with candidates [B]."""
        query, extra = self.encode_items(features)
        return self.score(self.encode_user(features), query, extra, training=training)

    def call(self, features, training=None):
        """Click probabilities [B]."""
        return tf.sigmoid(self.logits(features, training=training))

    def score_candidates(self, user_features, item_features) -> tf.Tensor:
        """Probabilities [B, N] of N candidates per row (user parts computed once per row).

        Args:
            user_features: transformed USER_KEYS [B] and HISTORY_KEYS [B, L].
            item_features: transformed ITEM_KEYS [B, N].
        """
        query, extra = self.encode_items(item_features)
        return tf.sigmoid(self.score(self.encode_user(user_features), query, extra, training=False))

    def mba_regularization(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Mini-batch aware L2 (DIN paper, eq. 6): lambda * sum_j ||w_j||^2 / n_j.

        The sum runs over the distinct ids j of every table present in the batch (history
        included; padding excluded); n_j is the id's number of occurrences in the training
        data. Rows absent from the batch get no gradient from it.
        """
        total = tf.constant(0.0)
        for name, layer in self.tables.items():
            keys = TABLE_INPUTS[name]
            ids = tf.concat([tf.reshape(tf.cast(features[k], tf.int64), [-1]) for k in keys], 0)
            ids, _ = tf.unique(tf.boolean_mask(ids, ids >= 0))
            sq = tf.reduce_sum(tf.square(layer(ids)), axis=-1)  # [U]
            total += tf.reduce_sum(tf.gather(self._inverse_counts[name], ids) * sq)
        return self.config.mba_lambda * total

    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        """Mean binary cross-entropy on F.LABEL plus the mini-batch aware regularisation."""
        features = inputs[0] if isinstance(inputs, tuple) else inputs
        labels = tf.cast(tf.reshape(features[F.LABEL], [-1]), tf.float32)
        logits = self.logits(features, training=training)
        loss = tf.reduce_mean(self.bce(labels[:, tf.newaxis], logits[:, tf.newaxis]))
        self.bce_metric.update_state(loss)
        self.auc.update_state(labels, tf.sigmoid(logits))
        if self.config.mba_lambda > 0:
            reg = self.mba_regularization(features)
            self.mba.update_state(reg)
            loss += reg
        return loss

    # Nothing here needs AutoGraph; converting this code and tf_keras' takes a minute.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, inputs):
        """tfrs.Model.train_step with the gradient of loss / replicas: the optimizer sums
        the replicas' gradients (models/common/distribute.py); 1 replica: unchanged."""
        gradients, variables, losses = distribute.scaled_gradients(self, inputs)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return {**{metric.name: metric.result() for metric in self.metrics}, **losses}

    @tf.autograph.experimental.do_not_convert
    def test_step(self, inputs):
        return super().test_step(inputs)

    def get_config(self):
        return {"config": self.config.to_dict(), "vocab_sizes": self.vocab_sizes}

    @classmethod
    def from_config(cls, config):
        return cls(RankingConfig.from_dict(config["config"]), config["vocab_sizes"])


def dummy_features(batch: int = 2, length: int = F.HISTORY_LENGTH) -> dict[str, tf.Tensor]:
    """Zero-valued transformed features (history all padding), e.g. to build the weights."""
    ids = tf.zeros([batch], tf.int64)
    return {
        **{key: ids for key in USER_KEYS + ITEM_KEYS[:2]},
        F.YEAR_NORMALIZED: tf.zeros([batch]),
        T(F.HISTORY_ITEM_IDS): -tf.ones([batch, length], tf.int64),
        T(F.HISTORY_GENRES): -tf.ones([batch, length], tf.int64),
        F.HISTORY_MASK: tf.zeros([batch, length]),
        F.LABEL: ids,
    }


def build_model(
    config: RankingConfig,
    vocab_sizes: Mapping[str, int],
    feature_counts: Mapping[str, np.ndarray] | None = None,
    compile_model: bool = True,
    total_steps: int | None = None,
) -> RankingModel:
    """A built (weights created) and, by default, compiled RankingModel.

    Args:
        config: hyperparameters; config.seed seeds the initialisation.
        vocab_sizes: rows per table (models.common.data.vocab_sizes).
        feature_counts: per-table id occurrences for the regularisation (see RankingModel).
        compile_model: compile with Adam(config.learning_rate).
        total_steps: training steps, over which config.lr_decay decays the learning rate.
    """
    tf_keras.utils.set_random_seed(config.seed)
    model = RankingModel(config, vocab_sizes, feature_counts)
    model(dummy_features(), training=False)
    if compile_model:
        compile_ranker(model, total_steps)
    return model


def compile_ranker(model: RankingModel, total_steps: int | None = None) -> None:
    """Compiles with Adam(config.learning_rate), cosine-decayed over total_steps when
    config.lr_decay. Again after changing which layers train."""
    lr = model.config.learning_rate
    if model.config.lr_decay and total_steps:
        lr = tf_keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps)
    model.compile(optimizer=tf_keras.optimizers.Adam(lr))


def feature_counts(dataset: tf.data.Dataset, vocab_sizes: Mapping[str, int]) -> dict:
    """Occurrences of every id per table over one pass of a transformed dataset.

    Returns:
        {table: float64 array [rows]} keyed as TABLE_INPUTS; padding (-1) is not counted.
    """
    counts = {name: np.zeros(vocab_sizes[name], np.float64) for name in TABLE_INPUTS}
    for batch in dataset:
        for name, keys in TABLE_INPUTS.items():
            for key in keys:
                ids = np.asarray(batch[key]).reshape(-1)
                ids = ids[(ids >= 0) & (ids < vocab_sizes[name])]
                counts[name] += np.bincount(ids, minlength=vocab_sizes[name])
    return counts
