"""The one adapter from raw requests to the models' Transform inputs.

Both exported models (the two-tower's query/candidate signatures and the ranker's
scoring signatures) take raw tensors as schemas/serving.py states them: user features
[B], histories [B, W] of any width W (most recent last, padded with F.PAD). Transform
wants every raw feature of its spec, each history exactly L long. This module does
that fitting, once for both models:

- `history_length(raw_spec)`: L, read from the Transform output's raw feature spec
  (whose shape schemas/schema.py derives from the run's history length);
- `fit_history`: [B, W] -> [B, L], PAD entries dropped, the L most recent kept;
- `user_inputs`: request features + fitted history + its length feature;
- `fill_raw_features`: every raw feature of the spec, defaults where the request has
  none (REQUEST_DEFAULTS, then RAW_DEFAULTS, then the dtype's default).
"""

from __future__ import annotations

import tensorflow as tf

from schemas import features as F
from schemas import serving

# Defaults of the raw features a request never carries (item side, label, slices).
RAW_DEFAULTS = {
    **serving.REQUEST_DEFAULTS,
    F.ITEM_ID: F.PAD,
    F.LABEL: 0,
    F.EVENT: 1,
    F.PRIMARY_GENRE: F.UNKNOWN,
    F.YEAR: F.MISSING_INT,
    F.HISTORY_LENGTH_FEATURE: 0,
    F.HISTORY_BUCKET: F.history_bucket(0),
}
USER_FEATURES = (F.USER_ID, F.AGE, F.GENDER, F.OCCUPATION, F.TIMESTAMP)


def history_length(raw_spec: dict) -> int:
    """L, the history length the Transform graph was built for (its raw spec's shape).

    Raises:
        ValueError: the spec's history is not a fixed-length feature.
    """
    feature = raw_spec.get(F.HISTORY_ITEM_IDS)
    if not isinstance(feature, tf.io.FixedLenFeature) or len(feature.shape) != 1:
        raise ValueError(
            f"the Transform raw spec's {F.HISTORY_ITEM_IDS!r} is {feature!r}, not a "
            "fixed-length [L] feature (see schemas/schema.py)"
        )
    return int(feature.shape[0])


def fit_history(items: tf.Tensor, genres: tf.Tensor, length: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Histories [B, any W] -> [B, length]: PAD items (and their genres) dropped, the
    `length` most recent kept (most recent last), right-padded with PAD.

    Args:
        items: [B, W] string item ids.
        genres: [B, W'] string genres aligned with items (cut or PAD-extended to W).
        length: L.

    Returns:
        (items [B, L], genres [B, L]).
    """
    width = tf.shape(items)[1]
    genres = genres[:, :width]  # aligned with the items, PAD where missing
    genres = tf.pad(genres, [[0, 0], [0, width - tf.shape(genres)[1]]], constant_values=F.PAD)
    keep = tf.not_equal(items, F.PAD)

    def fit(x):
        ragged = tf.ragged.boolean_mask(x, keep)
        return ragged[:, -length:].to_tensor(default_value=F.PAD, shape=[None, length])

    return fit(items), fit(genres)


def user_inputs(request: dict, length: int) -> dict:
    """The user side of a request as raw features: user features [B], the fitted
    history and history genres [B, L], and the history length feature [B] int64."""
    out = {key: request[key] for key in USER_FEATURES if key in request}
    items, genres = fit_history(request[F.HISTORY_ITEM_IDS], request[F.HISTORY_GENRES], length)
    out[F.HISTORY_ITEM_IDS], out[F.HISTORY_GENRES] = items, genres
    out[F.HISTORY_LENGTH_FEATURE] = tf.reduce_sum(tf.cast(items != F.PAD, tf.int64), axis=1)
    return out


def default_value(name: str, dtype: tf.DType):
    """The value a raw feature takes when a request lacks it."""
    if name in F.FIXED_LENGTH_LISTS:
        return F.PAD
    if name in RAW_DEFAULTS:
        return RAW_DEFAULTS[name]
    if dtype == tf.string:
        return F.PAD
    return F.MISSING_INT if dtype.is_integer else 0


def fill_raw_features(given: dict, raw_spec: dict, batch: tf.Tensor) -> dict:
    """Every raw feature of `raw_spec`, shaped like its spec, for Transform.

    Args:
        given: raw features a request provides: [batch] or [batch, width] dense tensors,
            SparseTensors for variable-length features.
        raw_spec: the Transform output's raw feature spec.
        batch: the batch size (scalar int32).

    Returns:
        name -> [batch, width] tensor (fixed-length) or [batch, ?] SparseTensor.
    """
    out = {}
    for name, spec in raw_spec.items():
        value = given.get(name)
        if isinstance(spec, tf.io.VarLenFeature):
            if value is None:
                value = tf.sparse.SparseTensor(
                    tf.zeros([0, 2], tf.int64),
                    tf.zeros([0], spec.dtype),
                    tf.stack([tf.cast(batch, tf.int64), 0]),
                )
            out[name] = value
            continue
        width = spec.shape[0] if spec.shape else 1
        if value is None:
            default = tf.constant(default_value(name, spec.dtype), spec.dtype)
            out[name] = tf.fill(tf.stack([batch, width]), default)
        else:
            out[name] = tf.reshape(tf.cast(value, spec.dtype), [batch, width])
    return out
