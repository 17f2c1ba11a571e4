"""Id embeddings: full tables and memory-efficient variants.

- `FullEmbedding`: one [num_ids, dim] table.
- `QREmbedding`: quotient-remainder trick (Shi et al. 2020): two small tables
  indexed by id // m and id % m, combined by multiply, add or concat. Distinct
  ids always get distinct (quotient, remainder) pairs.
- `MixedDimEmbedding`: mixed-dimension embeddings (Ginart et al. 2021): ids are
  split into popularity blocks (tf.Transform vocabularies are sorted by
  frequency, so the id is the popularity rank); block k has a table of width
  dims[k] and a projection to `dim`.

Every layer maps ids [...] -> vectors [..., dim]; negative ids (padding) give
zero vectors.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf
import tf_keras

FULL, QR, MIXED = "full", "qr", "mixed"
COMBINERS = ("multiply", "add", "concat")


@dataclasses.dataclass(frozen=True)
class EmbeddingSpec:
    """How one id feature is embedded.

    Attributes:
        kind: FULL, QR or MIXED.
        qr_buckets: m, the remainder table size (QR); 0 picks ceil(sqrt(num_ids)).
        qr_combiner: "multiply", "add" or "concat" (QR).
        mixed_boundaries: fractions of the ids that end each block (MIXED),
            most popular first; the last must be 1.0.
        mixed_dims: width of each block's table as a fraction of dim (MIXED).
    """

    kind: str = FULL
    qr_buckets: int = 0
    qr_combiner: str = "multiply"
    mixed_boundaries: tuple[float, ...] = (0.05, 0.3, 1.0)
    mixed_dims: tuple[float, ...] = (1.0, 0.5, 0.25)

    def __post_init__(self):
        if self.kind not in (FULL, QR, MIXED):
            raise ValueError(
                f"embedding.kind must be one of {(FULL, QR, MIXED)}, got {self.kind!r}"
            )
        if self.qr_combiner not in COMBINERS:
            raise ValueError(f"embedding.qr_combiner must be one of {COMBINERS}")
        if self.qr_buckets < 0:
            raise ValueError("embedding.qr_buckets must be >= 0")
        b = self.mixed_boundaries
        if len(b) != len(self.mixed_dims) or list(b) != sorted(b) or b[-1] != 1.0:
            raise ValueError("embedding.mixed_boundaries must increase to 1.0, one per mixed_dims")


def _mask_padding(ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(ids with padding replaced by 0, float mask [..., 1] that zeroes padding)."""
    ids = tf.cast(ids, tf.int64)
    mask = tf.cast(tf.greater_equal(ids, 0), tf.float32)[..., tf.newaxis]
    return tf.maximum(ids, 0), mask


class FullEmbedding(tf_keras.layers.Layer):
    """A full [num_ids, dim] table."""

    def __init__(self, num_ids: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_ids, self.dim = num_ids, dim
        self.table = tf_keras.layers.Embedding(num_ids, dim, name="table")

    def call(self, ids):
        ids, mask = _mask_padding(ids)
        return self.table(ids) * mask

    def get_config(self):
        return {**super().get_config(), "num_ids": self.num_ids, "dim": self.dim}


class QREmbedding(tf_keras.layers.Layer):
    """Quotient-remainder embedding: tables of ceil(num_ids / m) and m rows."""

    def __init__(
        self, num_ids: int, dim: int, buckets: int = 0, combiner: str = "multiply", **kwargs
    ):
        super().__init__(**kwargs)
        self.num_ids, self.dim, self.combiner = num_ids, dim, combiner
        self.buckets = buckets or max(1, math.ceil(math.sqrt(num_ids)))
        width = dim // 2 if combiner == "concat" else dim
        if combiner == "concat" and dim % 2:
            raise ValueError(f"QR concat needs an even dim, got {dim}")
        # With a product, remainder vectors start near 1 so that ids begin near their quotient's.
        rem_init = (
            tf_keras.initializers.RandomUniform(0.5, 1.5) if combiner == "multiply" else "uniform"
        )
        self.quotient = tf_keras.layers.Embedding(
            math.ceil(num_ids / self.buckets), width, name="quotient"
        )
        self.remainder = tf_keras.layers.Embedding(
            self.buckets, width, embeddings_initializer=rem_init, name="remainder"
        )

    def call(self, ids):
        ids, mask = _mask_padding(ids)
        q = self.quotient(ids // self.buckets)
        r = self.remainder(ids % self.buckets)
        if self.combiner == "multiply":
            out = q * r
        elif self.combiner == "add":
            out = q + r
        else:
            out = tf.concat([q, r], axis=-1)
        return out * mask

    def get_config(self):
        return {
            **super().get_config(),
            "num_ids": self.num_ids,
            "dim": self.dim,
            "buckets": self.buckets,
            "combiner": self.combiner,
        }


class MixedDimEmbedding(tf_keras.layers.Layer):
    """Popularity blocks with their own widths, each projected to `dim`."""

    def __init__(
        self, num_ids: int, dim: int, boundaries=(0.05, 0.3, 1.0), dims=(1.0, 0.5, 0.25), **kwargs
    ):
        super().__init__(**kwargs)
        self.num_ids, self.dim = num_ids, dim
        self.boundaries, self.dims = tuple(boundaries), tuple(dims)
        ends = [max(1, math.ceil(f * num_ids)) for f in boundaries]
        ends[-1] = num_ids
        self.starts = [0] + ends[:-1]
        self.ends = ends
        self.tables, self.projections = [], []
        for k, (start, end, frac) in enumerate(zip(self.starts, ends, dims, strict=True)):
            width = max(1, round(frac * dim))
            self.tables.append(
                tf_keras.layers.Embedding(max(1, end - start), width, name=f"block{k}")
            )
            self.projections.append(
                tf_keras.layers.Dense(dim, use_bias=False, name=f"proj{k}")
                if width != dim
                else None
            )

    def call(self, ids):
        ids, mask = _mask_padding(ids)
        out = tf.zeros(tf.concat([tf.shape(ids), [self.dim]], 0))
        for start, end, table, proj in zip(
            self.starts, self.ends, self.tables, self.projections, strict=True
        ):
            inside = tf.logical_and(ids >= start, ids < end)
            local = tf.where(inside, ids - start, 0)
            vec = table(local)
            vec = proj(vec) if proj is not None else vec
            out += vec * tf.cast(inside, tf.float32)[..., tf.newaxis]
        return out * mask

    def get_config(self):
        return {
            **super().get_config(),
            "num_ids": self.num_ids,
            "dim": self.dim,
            "boundaries": self.boundaries,
            "dims": self.dims,
        }


def make_embedding(spec: EmbeddingSpec, num_ids: int, dim: int, name: str) -> tf_keras.layers.Layer:
    """The embedding layer `spec` asks for."""
    if spec.kind == QR:
        return QREmbedding(num_ids, dim, spec.qr_buckets, spec.qr_combiner, name=name)
    if spec.kind == MIXED:
        return MixedDimEmbedding(num_ids, dim, spec.mixed_boundaries, spec.mixed_dims, name=name)
    return FullEmbedding(num_ids, dim, name=name)


def memory_report(layer: tf_keras.layers.Layer, num_ids: int, dim: int) -> dict:
    """Parameters and float32 bytes of `layer` against a full [num_ids, dim] table."""
    params = int(sum(tf.size(w).numpy() for w in layer.weights))
    full = num_ids * dim
    return {
        "params": params,
        "bytes": 4 * params,
        "full_params": full,
        "full_bytes": 4 * full,
        "ratio": params / full,
    }
