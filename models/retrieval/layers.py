"""Two-tower layers over Transform's outputs (models/preprocessing.py).

- `QueryTower`: user id embedding, user features (gender, occupation, age
  bucket), the behaviour history as a masked mean of the item embeddings SHARED
  with the candidate tower, time context (hour, day of week) -> MLP -> L2 norm.
- `CandidateTower`: item id embedding, genres (mean of genre embeddings over the
  multi-hot list), primary genre, normalised year -> MLP -> L2 norm.
- `FixedEmbedding`: a frozen [num_ids, dim] table for pretrained input vectors.
- `ItemCatalog`: item features by item id, to embed sampled negatives and the
  whole catalog (not a layer: it is rebuilt from the data on every run).

Inputs are dicts of transformed features; ids are int64, history padding is -1.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from models.common import embeddings as E
from models.common.history import last_state
from models.retrieval.sequence import SequenceEncoder
from schemas import features as F

T = F.transformed_name
ITEM, USER, GENRES, GENRE = T(F.ITEM_ID), T(F.USER_ID), T(F.GENRES), T(F.PRIMARY_GENRE)
HISTORY, GENDER, OCCUPATION, AGE = T(F.HISTORY_ITEM_IDS), T(F.GENDER), T(F.OCCUPATION), T(F.AGE)
QUERY_CATEGORICALS = (GENDER, OCCUPATION, AGE, F.HOUR_OF_DAY, F.DAY_OF_WEEK)
RAW_OF = {GENDER: F.GENDER, OCCUPATION: F.OCCUPATION, AGE: F.AGE}  # vocab_sizes keys


class FixedEmbedding(tf_keras.layers.Layer):
    """A non-trainable [num_ids, dim] table (pretrained vectors fed as inputs).

    ids [...] -> [..., dim]; negative ids (padding) give zeros. Values are set with
    `set_weights([matrix])` and saved with the model.
    """

    def __init__(self, num_ids: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_ids, self.dim = num_ids, dim
        self.table = self.add_weight(
            name="vectors", shape=(num_ids, dim), initializer="zeros", trainable=False
        )

    def call(self, ids):
        ids = tf.cast(ids, tf.int64)
        mask = tf.cast(ids >= 0, tf.float32)[..., tf.newaxis]
        return tf.gather(self.table, tf.clip_by_value(ids, 0, self.num_ids - 1)) * mask

    def get_config(self):
        return {**super().get_config(), "num_ids": self.num_ids, "dim": self.dim}


CUSTOM_OBJECTS = {
    "FullEmbedding": E.FullEmbedding,
    "QREmbedding": E.QREmbedding,
    "MixedDimEmbedding": E.MixedDimEmbedding,
    "FixedEmbedding": FixedEmbedding,
    "SequenceEncoder": SequenceEncoder,
}


def _layer(value):
    """A layer, or None; deserialises a layer config (from get_config)."""
    if value is None or isinstance(value, tf_keras.layers.Layer):
        return value
    return tf_keras.layers.deserialize(value, custom_objects=CUSTOM_OBJECTS)


def _serialize(layer):
    return None if layer is None else tf_keras.layers.serialize(layer)


def masked_mean(vectors: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean over axis 1 of vectors [B, L, D] where mask [B, L] is 1; all-masked rows -> 0."""
    mask = tf.cast(mask, vectors.dtype)[..., tf.newaxis]
    total = tf.reduce_sum(vectors * mask, axis=1)
    return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


class _Tower(tf_keras.layers.Layer):
    """Shared MLP head: hidden ReLU layers, a linear projection, L2 normalisation."""

    def __init__(self, hidden_units=(64,), output_dim=32, feature_dim=8, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units, self.output_dim = tuple(hidden_units), output_dim
        self.feature_dim = feature_dim
        self.hidden = [
            tf_keras.layers.Dense(u, activation="relu", name=f"hidden{i}")
            for i, u in enumerate(self.hidden_units)
        ]
        self.projection = tf_keras.layers.Dense(output_dim, name="projection")

    def head(self, parts: list[tf.Tensor], training=None) -> tf.Tensor:
        """[B, sum widths] concatenated parts -> [B, output_dim] unit vectors."""
        x = tf.concat([tf.cast(p, tf.float32) for p in parts], axis=-1)
        for layer in self.hidden:
            x = layer(x, training=training)
        return tf.math.l2_normalize(self.projection(x), axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "output_dim": self.output_dim,
            "feature_dim": self.feature_dim,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key, value in config.items():
            if isinstance(value, dict) and "class_name" in value:
                config[key] = _layer(value)
        return cls(**config)


class QueryTower(_Tower):
    """Transformed query features -> [B, output_dim] L2-normalised query embeddings.

    Args:
        item_embedding: the item id layer shared with the CandidateTower.
        user_embedding: the user id layer.
        feature_sizes: {transformed name: rows} for QUERY_CATEGORICALS.
        pretrained: optional FixedEmbedding shared with the CandidateTower; its
            masked history mean is an extra input ("input" mode).
        history_encoder: optional SequenceEncoder; its state at the most recent
            history position is an extra input (beside the masked mean).
        pretrained_users: optional FixedEmbedding of pretrained user vectors, an
            extra input ("input" mode; models/retrieval/user_vectors.py).
    """

    def __init__(
        self,
        item_embedding,
        user_embedding,
        feature_sizes,
        pretrained=None,
        history_encoder=None,
        **kw,
    ):
        pretrained_users = kw.pop("pretrained_users", None)
        super().__init__(**kw)
        self.item_embedding, self.user_embedding = _layer(item_embedding), _layer(user_embedding)
        self.pretrained_users = _layer(pretrained_users)
        self.pretrained = _layer(pretrained)
        self.history_encoder = _layer(history_encoder)
        self.feature_sizes = {k: int(v) for k, v in feature_sizes.items()}
        self.categoricals = {
            name: E.FullEmbedding(self.feature_sizes[name], self.feature_dim, name=f"{name}_emb")
            for name in QUERY_CATEGORICALS
        }

    @staticmethod
    def history(features) -> tuple[tf.Tensor, tf.Tensor]:
        """(history ids [B, L], -1 where masked; mask [B, L] float) of a transformed batch."""
        history = tf.cast(features[HISTORY], tf.int64)
        mask = tf.cast(features[F.HISTORY_MASK], tf.float32) * tf.cast(history >= 0, tf.float32)
        return tf.where(mask > 0, history, -1), mask  # masked positions never reach a table

    def call(self, features, training=None):
        """features: user_id_idx [B], gender/occupation/age_idx [B], hour_of_day [B],
        day_of_week [B], history_item_ids_idx [B, L] (-1 padded), history_mask [B, L]."""
        return self.queries(features, training=training)[0]

    def prefix_queries(self, features, select, training=None) -> tf.Tensor:
        """[P, output_dim] queries of the history prefixes where select [B, L] is True
        (see `queries`)."""
        return self.queries(features, select, training=training)[1]

    def queries(self, features, select=None, training=None):
        """(whole-history queries [B, output_dim], prefix queries [P, output_dim] or None),
        from ONE pass of the history encoder (one dropout mask for both).

        Position i's prefix query sees h_0..h_i only: the same head as the whole
        history's query, with the history mean and the encoder state of the prefix in
        place of the whole history's; it is the query for the next history item h_{i+1}
        (SASRec's every-position targets). Positions keep their recency in the whole
        window, as in SASRec's left-padded windows; at the most recent position it is
        exactly the whole-history query. Prefix rows come in row-major order of select
        [B, L]; only the selected rows are gathered (no [B, L, width] copies of the
        per-user inputs). Prefixes need a history_encoder.
        """
        if select is not None and self.history_encoder is None:
            raise ValueError("prefix queries need a history_encoder (history kind 'mean' has none)")
        history, mask = self.history(features)
        vectors = self.item_embedding(history)
        states = None
        if self.history_encoder is not None:
            states = self.history_encoder(vectors, mask, training=training)
        fixed = None if self.pretrained is None else self.pretrained(history)
        user = self.user_embedding(features[USER])
        context = [self.categoricals[n](features[n]) for n in QUERY_CATEGORICALS]
        users = [] if self.pretrained_users is None else [self.pretrained_users(features[USER])]

        def parts(pick, mean, state, fixed_mean):  # the head's input order
            out = [pick(user), mean] + ([] if state is None else [state])
            out += [pick(c) for c in context] + ([] if fixed_mean is None else [fixed_mean])
            return out + [pick(u) for u in users]

        whole = self.head(
            parts(
                lambda t: t,
                masked_mean(vectors, mask),
                None if states is None else last_state(states, mask),
                None if fixed is None else masked_mean(fixed, mask),
            ),
            training,
        )
        if select is None:
            return whole, None
        at = tf.where(select)  # [P, 2]: (row, position)

        def prefix_mean(v):  # [B, L, D] -> [P, D]
            m = mask[..., tf.newaxis]
            means = tf.cumsum(v * m, axis=1) / tf.maximum(tf.cumsum(m, axis=1), 1.0)
            return tf.gather_nd(means, at)

        prefix = self.head(
            parts(
                lambda t: tf.gather(t, at[:, 0]),
                prefix_mean(vectors),
                tf.gather_nd(states, at),
                None if fixed is None else prefix_mean(fixed),
            ),
            training,
        )
        return whole, prefix

    def get_config(self):
        return {
            **super().get_config(),
            "item_embedding": _serialize(self.item_embedding),
            "user_embedding": _serialize(self.user_embedding),
            "feature_sizes": self.feature_sizes,
            "pretrained": _serialize(self.pretrained),
            "history_encoder": _serialize(self.history_encoder),
            "pretrained_users": _serialize(self.pretrained_users),
        }


class CandidateTower(_Tower):
    """Transformed item features -> [B, output_dim] L2-normalised item embeddings.

    Args:
        item_embedding: the item id layer shared with the QueryTower.
        num_genres: rows of the genre table (vocabulary + OOV), shared by
            `genres_idx` and `genre_idx`.
        pretrained: optional FixedEmbedding of pretrained item vectors.
    """

    def __init__(self, item_embedding, num_genres: int, pretrained=None, **kw):
        super().__init__(**kw)
        self.item_embedding, self.pretrained = _layer(item_embedding), _layer(pretrained)
        self.num_genres = int(num_genres)
        self.genre_embedding = E.FullEmbedding(self.num_genres, self.feature_dim, name="genre_emb")

    def call(self, features, training=None):
        """features: item_id_idx [B], genres_idx SparseTensor [B, G] (or dense, -1
        padded), genre_idx [B], year_normalized [B]."""
        genres = features[GENRES]
        if isinstance(genres, tf.SparseTensor):
            genres = tf.sparse.to_dense(genres, default_value=-1)
        genres = tf.cast(genres, tf.int64)
        item = features[ITEM]
        parts = [
            self.item_embedding(item),
            masked_mean(self.genre_embedding(genres), tf.cast(genres >= 0, tf.float32)),
            self.genre_embedding(features[GENRE]),
            tf.reshape(tf.cast(features[F.YEAR_NORMALIZED], tf.float32), [-1, 1]),
        ]
        if self.pretrained is not None:
            parts.append(self.pretrained(item))
        return self.head(parts, training)

    def get_config(self):
        return {
            **super().get_config(),
            "item_embedding": _serialize(self.item_embedding),
            "num_genres": self.num_genres,
            "pretrained": _serialize(self.pretrained),
        }


class ItemCatalog:
    """Candidate-tower features of every item id, to embed ids that come without features.

    Args:
        genre: [V] primary genre id per item id (-1 unknown).
        genres: [V, G] genre ids, -1 padded.
        year: [V] year_normalized.
        positives: [V] positive examples (label 1) per item id in the batches read (None:
            zeros), for the pushed model's popularity prior (models/retrieval/prior.py).
    """

    def __init__(self, genre: np.ndarray, genres: np.ndarray, year: np.ndarray, positives=None):
        self.num_items = len(genre)
        self.arrays = (np.asarray(genre), np.asarray(genres), np.asarray(year))
        zeros = np.zeros(self.num_items, np.int64)
        self.positives = zeros if positives is None else np.asarray(positives)
        self._genre = tf.constant(genre, tf.int64)
        self._genres = tf.constant(genres, tf.int64)
        self._year = tf.constant(year, tf.float32)

    @classmethod
    def empty(cls, num_items: int, max_genres: int = 1) -> ItemCatalog:
        """A catalog that knows no features (ids only)."""
        return cls(
            np.full(num_items, -1), np.full((num_items, max_genres), -1), np.zeros(num_items)
        )

    @classmethod
    def from_batches(cls, batches, num_items: int, max_genres: int = 8) -> ItemCatalog:
        """Collects the features of every item id seen in transformed batches.

        Args:
            batches: iterable of transformed feature dicts (e.g. a finite tf.data.Dataset).
            num_items: V, the item table size (vocabulary + OOV buckets).
            max_genres: G, genres kept per item.
        """
        cat = cls.empty(num_items, max_genres)
        genre, genres, year = (np.array(a) for a in cat.arrays)
        positives = np.zeros(num_items, np.int64)
        for batch in batches:
            ids = batch[ITEM].numpy()
            keep = (ids >= 0) & (ids < num_items)
            # The two-tower's own training targets: the same counts whether the files hold
            # every example (the pipeline) or the positives only (B1's two-tower subset).
            positive = tf.reshape(batch[F.LABEL], [-1]).numpy() == 1
            np.add.at(positives, ids[keep & positive], 1)
            dense = tf.sparse.to_dense(batch[GENRES], default_value=-1).numpy()[:, :max_genres]
            genre[ids[keep]] = batch[GENRE].numpy()[keep]
            genres[ids[keep]] = -1
            genres[ids[keep], : dense.shape[1]] = dense[keep]
            year[ids[keep]] = batch[F.YEAR_NORMALIZED].numpy()[keep]
        return cls(genre, genres, year, positives)

    def lookup(self, ids: tf.Tensor) -> dict[str, tf.Tensor]:
        """Transformed candidate features of ids [N] (clipped into the table)."""
        ids = tf.clip_by_value(tf.cast(ids, tf.int64), 0, self.num_items - 1)
        return {
            ITEM: ids,
            GENRES: tf.gather(self._genres, ids),
            GENRE: tf.gather(self._genre, ids),
            F.YEAR_NORMALIZED: tf.gather(self._year, ids),
        }
