"""The ranker's raw-feature SavedModel: the Transform graph and the model in one.

Signatures:
- `serving_default`: serialized tf.Examples [B] (raw sequence features; a missing feature
  takes its default) -> {"probabilities": [B]}. TFMA's Evaluator uses it.
- `score_candidates`: raw tensors, N candidates per row -> {"scores": [B, N]}. The user and
  history parts are transformed and embedded once per row; only the candidate side is
  per (row, candidate).
- `transform_candidates`: raw item features [V] -> the model's item inputs [V] (transformed
  id and genre, normalised year). The serving model runs it once over the catalog at export.
- `score_transformed_candidates`: raw user features and history [B, ...] plus transformed
  item inputs [B, N] -> {"scores": [B, N]}: `score_candidates` without the candidates'
  Transform pass, for callers that hold the catalog's `transform_candidates` output.

Unknown ids fall into Transform's OOV buckets; they never fail a request.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models.ranking.model import HISTORY_KEYS, ITEM_KEYS, USER_KEYS, RankingModel
from schemas import features as F

SERVING_DEFAULT = "serving_default"
SCORE_CANDIDATES = "score_candidates"
TRANSFORM_CANDIDATES = "transform_candidates"
SCORE_TRANSFORMED = "score_transformed_candidates"
PROBABILITIES = "probabilities"
SCORES = "scores"
EXAMPLES = "examples"

# Default of each scalar raw feature when a request lacks it.
_DEFAULTS = {
    F.USER_ID: F.PAD,
    F.ITEM_ID: F.PAD,
    F.TIMESTAMP: 0,
    F.LABEL: 0,
    F.EVENT: 1,
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

    def transform_user(self, inputs) -> dict:
        """Transformed USER_KEYS [B] and HISTORY_KEYS [B, L] of raw user inputs and history."""
        length = F.HISTORY_LENGTH
        user = {k: tf.reshape(inputs[k], [-1, 1]) for k in _USER_INPUTS}
        items = inputs[F.HISTORY_ITEM_IDS]
        history = fit_history(items, length)
        user[F.HISTORY_ITEM_IDS] = history
        user[F.HISTORY_GENRES] = fit_history(inputs[F.HISTORY_GENRES], length, reference=items)
        valid = tf.reduce_sum(tf.cast(tf.not_equal(history, F.PAD), tf.int64), 1, keepdims=True)
        user[F.HISTORY_LENGTH_FEATURE] = valid
        batch = tf.shape(inputs[F.USER_ID])[0]
        user_t = self.tft_layer(full_raw_features(user, self._raw_spec(), batch))
        return {k: user_t[k] for k in USER_KEYS + HISTORY_KEYS}

    def transform_items(self, inputs) -> dict:
        """Transformed ITEM_KEYS [...] of raw item_id, primary genre and year [...]."""
        shape = tf.shape(inputs[F.ITEM_ID])
        items = {k: tf.reshape(inputs[k], [-1, 1]) for k in _ITEM_INPUTS}
        items_t = self.tft_layer(full_raw_features(items, self._raw_spec(), tf.reduce_prod(shape)))
        return {k: tf.reshape(items_t[k], shape) for k in ITEM_KEYS}

    def score(self, inputs):
        item_features = self.transform_items({k: inputs[k] for k in _ITEM_INPUTS})
        return self.score_transformed({**inputs, **item_features})

    def score_transformed(self, inputs):
        item_features = {k: inputs[k] for k in ITEM_KEYS}
        scores = self._model().score_candidates(self.transform_user(inputs), item_features)
        return {SCORES: scores}


def _user_specs() -> dict:
    specs = {k: tf.TensorSpec([None], d, name=k) for k, d in _USER_INPUTS.items()}
    for k in (F.HISTORY_ITEM_IDS, F.HISTORY_GENRES):
        specs[k] = tf.TensorSpec([None, None], tf.string, name=k)
    return specs


def _signatures(exporter: _Exporter) -> dict:
    """The candidate-scoring tf.functions, by signature name."""
    raw_items = {k: tf.TensorSpec([None, None], d, name=k) for k, d in _ITEM_INPUTS.items()}
    item_dtypes = {k: tf.int64 for k in ITEM_KEYS}
    item_dtypes[F.YEAR_NORMALIZED] = tf.float32
    xf_items = {k: tf.TensorSpec([None, None], d, name=k) for k, d in item_dtypes.items()}
    catalog = {k: tf.TensorSpec([None], d, name=k) for k, d in _ITEM_INPUTS.items()}

    @tf.function(input_signature=[{**_user_specs(), **raw_items}], autograph=False)
    def score_candidates(inputs):
        return exporter.score(inputs)

    @tf.function(input_signature=[{**_user_specs(), **xf_items}], autograph=False)
    def score_transformed_candidates(inputs):
        return exporter.score_transformed(inputs)

    @tf.function(input_signature=[catalog], autograph=False)
    def transform_candidates(inputs):
        return exporter.transform_items(inputs)

    return {
        SCORE_CANDIDATES: score_candidates,
        SCORE_TRANSFORMED: score_transformed_candidates,
        TRANSFORM_CANDIDATES: transform_candidates,
    }


def export_serving_model(
    model: RankingModel, tft_output: tft.TFTransformOutput, export_dir: str
) -> str:
    """Writes the raw-feature SavedModel (signatures above) to `export_dir`; returns it."""
    exporter = _Exporter(model, tft_output)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES)], autograph=False)
    def serving_default(examples):
        return exporter.serve_examples(examples)

    functions = {SERVING_DEFAULT: serving_default, **_signatures(exporter)}
    for name, function in functions.items():
        setattr(exporter, name, function)
    signatures = {name: f.get_concrete_function() for name, f in functions.items()}
    tf.saved_model.save(exporter, export_dir, signatures=signatures)
    return export_dir
