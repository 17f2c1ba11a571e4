"""Exports: one SavedModel taking raw features (Transform graph inside), and the catalog.

`export_serving_model` writes, at serving_model_dir:
- signatures `query_embedding`, `candidate_embedding` (raw tensors in) and
  `serving_default` (serialized tf.Examples in, the query embedding out);
  each returns {"embedding": float32 [B, D]} (names: schemas/serving.py). Histories
  of any width are fitted to the Transform's history length L and features a
  signature does not take get defaults (models/common/requests.py), because the
  Transform layer wants every raw input; unknown ids fall into Transform's OOV buckets;
- `assets.extra/id_vocabularies.json`: the item and user vocabularies of the
  id tables (warm start re-aligns rows with them, see updates.warm_start);
- `assets.extra/retrieval.json`: the softmax temperature (the combined serving model
  turns cosines into log-probabilities with it) and the popularity prior, if any;
With a popularity prior (models/retrieval/prior.py), both embeddings get one more column,
[q, beta / s] and [c, s * log(1 + n)], so that their dot product, the retrieval score
every consumer computes, is cos + beta * log(1 + n).
and next to it, at `item_embeddings_path(serving_model_dir)` =
`<serving_model_dir>/../item_embeddings.npz`: `ids` (str [N], the item
vocabulary in order) and `embeddings` (float32 [N, D]) of every vocabulary item.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models.common import requests
from models.retrieval import updates
from models.retrieval.prior import INFO_KEY
from schemas import features as F
from schemas import serving

EMBEDDING = serving.EMBEDDING_KEY
ITEM_EMBEDDINGS_FILE = "item_embeddings.npz"
_QUERY_SPEC, _CANDIDATE_SPEC = serving.QUERY_SPEC, serving.CANDIDATE_SPEC
_ITEM = F.transformed_name(F.ITEM_ID)


# assets.extra: {"temperature": the softmax temperature, "popularity_prior": None or
# PopularityPrior.describe()}
MODEL_INFO_FILE = "retrieval.json"


def read_model_info(serving_model_dir: str) -> dict:
    """The retrieval SavedModel's assets.extra/retrieval.json ({}: not recorded)."""
    path = os.path.join(serving_model_dir, "assets.extra", MODEL_INFO_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def read_temperature(serving_model_dir: str) -> float | None:
    """The softmax temperature a retrieval SavedModel was trained with (None: not recorded)."""
    temperature = read_model_info(serving_model_dir).get("temperature")
    return None if temperature is None else float(temperature)


def prior_query_value(serving_model_dir: str) -> float | None:
    """The query's prior column, beta / s, of a retrieval SavedModel (None: no prior): the
    candidate column times it is the item's prior beta * log(1 + n)."""
    info = read_model_info(serving_model_dir).get(INFO_KEY)
    return float(info["beta"]) / float(info["scale"]) if info else None


def item_embeddings_path(serving_model_dir: str) -> str:
    """Where the catalog's item embeddings go: next to the SavedModel directory."""
    return os.path.join(os.path.dirname(os.path.normpath(serving_model_dir)), ITEM_EMBEDDINGS_FILE)


class _ServingModule(tf.Module):
    """The towers, the Transform layer and the signatures' tf.functions."""

    def __init__(self, model, tft_output: tft.TFTransformOutput, prior=None):
        super().__init__()
        self.prior = prior
        self.query_tower, self.candidate_tower = model.query_tower, model.candidate_tower
        self.tft_layer = tft_output.transform_features_layer()
        self.model_variables = list(model.weights)  # for updates.warm_start
        self._raw_spec = tft_output.raw_feature_spec()
        self.history_length = requests.history_length(self._raw_spec)  # L of the Transform

    def _raw(self, given: dict, batch: tf.Tensor) -> dict:
        return requests.fill_raw_features(given, self._raw_spec, batch)

    def _query(self, inputs: dict) -> dict:
        batch = tf.shape(inputs[F.USER_ID])[0]
        given = requests.user_inputs(inputs, self.history_length)
        transformed = self.tft_layer(self._raw(given, batch))
        query = self.query_tower(transformed, training=False)
        return {EMBEDDING: query if self.prior is None else self.prior.query(query)}

    @tf.function(input_signature=[_QUERY_SPEC], autograph=False)
    def query_embedding(self, inputs):
        return self._query(inputs)

    @tf.function(input_signature=[_CANDIDATE_SPEC], autograph=False)
    def candidate_embedding(self, inputs):
        batch = tf.shape(inputs[F.ITEM_ID])[0]
        given = dict(inputs)
        given[F.GENRES] = tf.sparse.from_dense(inputs[F.GENRES])  # drops "" padding
        transformed = self.tft_layer(self._raw(given, batch))
        items = self.candidate_tower(transformed, training=False)
        if self.prior is not None:
            items = self.prior.candidates(items, transformed[_ITEM])
        return {EMBEDDING: items}

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, serving.EXAMPLES)], autograph=False
    )
    def serve_tf_examples(self, examples):
        spec = {
            k: tf.io.FixedLenFeature([], _QUERY_SPEC[k].dtype, default)
            for k, default in serving.REQUEST_DEFAULTS.items()
        }
        spec.update({k: tf.io.VarLenFeature(tf.string) for k in F.FIXED_LENGTH_LISTS})
        parsed = tf.io.parse_example(examples, spec)
        for name in F.FIXED_LENGTH_LISTS:
            parsed[name] = tf.sparse.to_dense(parsed[name], default_value=F.PAD)
        return self._query(parsed)


def export_serving_model(model, tft_output, serving_model_dir: str, prior=None) -> str:
    """Writes the SavedModel, its id vocabularies and the item embeddings; returns the npz
    path. `prior`: a `prior.PopularityPrior` over the item id table, or None."""
    module = _ServingModule(model, tft_output, prior)
    signatures = {
        serving.SERVING_DEFAULT: module.serve_tf_examples,
        serving.QUERY_SIGNATURE: module.query_embedding,
        serving.CANDIDATE_SIGNATURE: module.candidate_embedding,
    }
    tf.saved_model.save(module, serving_model_dir, signatures=signatures)
    vocabs = updates.read_vocabularies(tft_output)
    extra = os.path.join(serving_model_dir, "assets.extra")
    tf.io.gfile.makedirs(extra)
    with tf.io.gfile.GFile(os.path.join(extra, updates.VOCAB_FILE), "w") as f:
        json.dump(vocabs, f)
    with tf.io.gfile.GFile(os.path.join(extra, MODEL_INFO_FILE), "w") as f:
        info = {"temperature": float(model.config.tower.temperature)}
        info[INFO_KEY] = None if prior is None else prior.describe()
        json.dump(info, f)
    path = item_embeddings_path(serving_model_dir)
    return export_item_embeddings(model, vocabs[F.ITEM_ID], path, prior=prior)


def export_item_embeddings(
    model, item_vocab: list[str], path: str, batch: int = 4096, prior=None
) -> str:
    """Embeds every vocabulary item with its catalog features (and the prior's column);
    writes ids + [N, D (+ 1)] matrix."""

    def embed(ids):
        items = model.embed_items(ids)
        return items if prior is None else prior.candidates(items, ids)

    chunks = [
        embed(tf.range(start, min(start + batch, len(item_vocab)), dtype=tf.int64))
        for start in range(0, len(item_vocab), batch)
    ]
    matrix = tf.concat(chunks, axis=0).numpy().astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.array(item_vocab, dtype=str), embeddings=matrix)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())
    return path
