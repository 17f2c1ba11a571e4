"""The ranker's raw-feature SavedModel: the Transform graph and the model in one.

Signatures:
- `serving_default`: serialized tf.Examples [B] (raw sequence features; a missing feature
  takes its default) -> {"probabilities": [B]}. TFMA's Evaluator uses it.
- `score_candidates`: raw tensors, N candidates per row -> {"scores": [B, N]}. The user and
  history parts are transformed and embedded once per row; only the candidate side is
  per (row, candidate). The serving model calls it to rerank retrieved items.

Unknown ids fall into Transform's OOV buckets; they never fail a request.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models.ranking.model import HISTORY_KEYS, ITEM_KEYS, USER_KEYS, RankingModel
from schemas import features as F

SERVING_DEFAULT = "serving_default"
SCORE_CANDIDATES = "score_candidates"
PROBABILITIES = "probabilities"
SCORES = "scores"
EXAMPLES = "examples"

# Default of each scalar raw feature when a request lacks it.
_DEFAULTS = {
    F.USER_ID: F.PAD,
    F.ITEM_ID: F.PAD,
    F.TIMESTAMP: 0,
    F.LABEL: 0,
    F.AGE: F.MISSING_INT,
    F.GENDER: F.UNKNOWN,
    F.OCCUPATION: F.UNKNOWN,
    F.PRIMARY_GENRE: F.UNKNOWN,
    F.YEAR: F.MISSING_INT,
    F.HISTORY_LENGTH_FEATURE: 0,
    F.HISTORY_BUCKET: F.history_bucket(0),
}
_USER_INPUTS = {
    F.USER_ID: tf.string,
    F.AGE: tf.int64,
    F.GENDER: tf.string,
    F.OCCUPATION: tf.string,
    F.TIMESTAMP: tf.int64,
}
_ITEM_INPUTS = {F.ITEM_ID: tf.string, F.PRIMARY_GENRE: tf.string, F.YEAR: tf.int64}


def serving_parse_spec(raw_spec: dict) -> dict:
    """Transform's raw feature spec without the label, every fixed-length feature defaulted."""
    spec = {}
    for name, feature in raw_spec.items():
        if name == F.LABEL:
            continue
        if isinstance(feature, tf.io.FixedLenFeature):
            size = feature.shape[0] if feature.shape else 1
            default = F.PAD if name in F.FIXED_LENGTH_LISTS else _DEFAULTS[name]
            feature = tf.io.FixedLenFeature(feature.shape, feature.dtype, [default] * size)
        spec[name] = feature
    return spec


def full_raw_features(partial: dict, raw_spec: dict, batch: tf.Tensor) -> dict:
    """A complete raw-feature dict for Transform: `partial` plus defaults for the rest.

    Args:
        partial: raw features [batch, ...] a request provides.
        raw_spec: Transform's raw feature spec.
        batch: the batch size (scalar int32).
    """
    out = dict(partial)
    for name, feature in raw_spec.items():
        if name in out:
            continue
        if isinstance(feature, tf.io.VarLenFeature):
            out[name] = tf.sparse.SparseTensor(
                tf.zeros([0, 2], tf.int64),
                tf.zeros([0], feature.dtype),
                [tf.cast(batch, tf.int64), 0],
            )
            continue
        width = feature.shape[0] if feature.shape else 1
        default = F.PAD if name in F.FIXED_LENGTH_LISTS else _DEFAULTS[name]
        out[name] = tf.fill(tf.stack([batch, width]), tf.constant(default, feature.dtype))
    return out


def fit_history(history: tf.Tensor, length: int, reference: tf.Tensor | None = None) -> tf.Tensor:
    """The `length` most recent entries of oldest-first histories padded at the end.

    Args:
        history: [B, W] strings, valid entries first, then F.PAD (any W, even 0).
        length: L.
        reference: [B, W] history whose valid entries decide the window (default
            `history`); pass the item ids when cutting their aligned genres.

    Returns:
        [B, L], padded with F.PAD.
    """
    reference = history if reference is None else reference
    valid = tf.reduce_sum(tf.cast(tf.not_equal(reference, F.PAD), tf.int32), axis=1)  # [B]
    start = tf.maximum(valid - length, 0)
    padded = tf.pad(history, [[0, 0], [0, length]], constant_values=F.PAD)
    return tf.gather(padded, start[:, tf.newaxis] + tf.range(length), batch_dims=1)


class _Exporter(tf.Module):
    """Tracks the Transform layer and the model's variables; the model stays untracked."""

    def __init__(self, model: RankingModel, tft_output: tft.TFTransformOutput):
        super().__init__(name="ranker")
        self.tft_layer = tft_output.transform_features_layer()
        self.model_variables = model.model_weights  # for warm_start
        # Closures keep the model and the spec out of the object graph (no Keras serialization).
        raw_spec = tft_output.raw_feature_spec()

        def get_model():
            return model

        def get_raw_spec():
            return raw_spec

        self._model, self._raw_spec = get_model, get_raw_spec

    def serve_examples(self, examples):
        raw = tf.io.parse_example(examples, serving_parse_spec(self._raw_spec()))
        raw = full_raw_features(raw, self._raw_spec(), tf.shape(examples)[0])
        probs = self._model()(self.tft_layer(raw), training=False)
        return {PROBABILITIES: tf.reshape(probs, [-1])}

    def score(self, inputs):
        b, n = tf.shape(inputs[F.ITEM_ID])[0], tf.shape(inputs[F.ITEM_ID])[1]
        length = F.HISTORY_LENGTH
        user = {k: tf.reshape(inputs[k], [-1, 1]) for k in _USER_INPUTS}
        items = inputs[F.HISTORY_ITEM_IDS]
        history = fit_history(items, length)
        user[F.HISTORY_ITEM_IDS] = history
        user[F.HISTORY_GENRES] = fit_history(inputs[F.HISTORY_GENRES], length, reference=items)
        valid = tf.reduce_sum(tf.cast(tf.not_equal(history, F.PAD), tf.int64), 1, keepdims=True)
        user[F.HISTORY_LENGTH_FEATURE] = valid
        user_t = self.tft_layer(full_raw_features(user, self._raw_spec(), b))
        candidates = {k: tf.reshape(inputs[k], [-1, 1]) for k in _ITEM_INPUTS}
        items_t = self.tft_layer(full_raw_features(candidates, self._raw_spec(), b * n))
        user_features = {k: user_t[k] for k in USER_KEYS + HISTORY_KEYS}
        item_features = {k: tf.reshape(items_t[k], [b, n]) for k in ITEM_KEYS}
        return {SCORES: self._model().score_candidates(user_features, item_features)}


def _score_signature(exporter: _Exporter):
    specs = {k: tf.TensorSpec([None], d, name=k) for k, d in _USER_INPUTS.items()}
    for k in (F.HISTORY_ITEM_IDS, F.HISTORY_GENRES):
        specs[k] = tf.TensorSpec([None, None], tf.string, name=k)
    specs.update({k: tf.TensorSpec([None, None], d, name=k) for k, d in _ITEM_INPUTS.items()})

    @tf.function(input_signature=[specs], autograph=False)
    def score_candidates(inputs):
        return exporter.score(inputs)

    return score_candidates


def export_serving_model(
    model: RankingModel, tft_output: tft.TFTransformOutput, export_dir: str
) -> str:
    """Writes the raw-feature SavedModel (signatures above) to `export_dir`; returns it."""
    exporter = _Exporter(model, tft_output)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES)], autograph=False)
    def serving_default(examples):
        return exporter.serve_examples(examples)

    score_candidates = _score_signature(exporter)
    exporter.serving_default, exporter.score_candidates = serving_default, score_candidates
    signatures = {
        SERVING_DEFAULT: serving_default.get_concrete_function(),
        SCORE_CANDIDATES: score_candidates.get_concrete_function(),
    }
    tf.saved_model.save(exporter, export_dir, signatures=signatures)
    return export_dir
