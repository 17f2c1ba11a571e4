"""RetrievalEvaluator's Do on real artifacts: tiny_data's raw examples and catalog, and
tiny SavedModels with the `query_embedding` / `candidate_embedding` signatures."""

import collections
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.evaluator import constants
from tfx.types import artifact_utils, standard_artifacts

from components.retrieval_evaluator import executor as E
from components.retrieval_evaluator import metrics as M
from models.common import example_codec
from schemas import features as F
from schemas import serving

DIM = 8
QUERY_SPEC, CANDIDATE_SPEC = serving.QUERY_SPEC, serving.CANDIDATE_SPEC


class _TinyModel(tf.Module):
    """popularity: query [1, 0, ...], item [log1p(train count) + tie-breaking noise, 0, ...].
    random: hashed-id embeddings with random tables (a deliberately broken model)."""

    def __init__(self, kind: str, counts: dict[str, int], seed: int = 0):
        super().__init__()
        self.kind = kind
        rng = np.random.default_rng(seed)
        self.users = tf.Variable(rng.normal(size=(1000, DIM)).astype(np.float32))
        self.items = tf.Variable(rng.normal(size=(1000, DIM)).astype(np.float32))
        keys, values = list(counts), [float(np.log1p(c)) for c in counts.values()]
        self.popularity = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, values), default_value=0.0
        )

    @tf.function(input_signature=[QUERY_SPEC])
    def query_embedding(self, inputs):
        users = inputs[F.USER_ID]
        if self.kind == "random":
            return {
                serving.EMBEDDING_KEY: tf.gather(
                    self.users, tf.strings.to_hash_bucket_fast(users, 1000)
                )
            }
        ones = tf.ones_like(users, tf.float32)[:, None]
        return {
            serving.EMBEDDING_KEY: tf.concat([ones, tf.zeros([tf.size(users), DIM - 1])], axis=1)
        }

    @tf.function(input_signature=[CANDIDATE_SPEC])
    def candidate_embedding(self, inputs):
        hashed = tf.gather(self.items, tf.strings.to_hash_bucket_fast(inputs[F.ITEM_ID], 1000))
        if self.kind == "random":
            return {serving.EMBEDDING_KEY: hashed}
        score = self.popularity.lookup(inputs[F.ITEM_ID]) + 1e-3 * hashed[:, 0]
        return {serving.EMBEDDING_KEY: tf.concat([score[:, None], hashed[:, 1:] * 0.0], axis=1)}


def _train_counts(tiny_data) -> dict[str, int]:
    counts = collections.Counter()
    files = glob.glob(tiny_data.raw("train"))
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        row = example_codec.decode(record.numpy(), F.SEQUENCE_FEATURES)
        if row[F.LABEL] == 1:
            counts[row[F.ITEM_ID]] += 1
    return dict(counts)


def _model_artifact(root, kind, counts, artifact_id):
    model = standard_artifacts.Model()
    model.uri = os.path.join(root, kind)
    model.id = artifact_id
    module = _TinyModel(kind, counts)
    signatures = {
        serving.QUERY_SIGNATURE: module.query_embedding,
        serving.CANDIDATE_SIGNATURE: module.candidate_embedding,
    }
    tf.saved_model.save(module, os.path.join(model.uri, "Format-Serving"), signatures=signatures)
    return model


def _examples_artifact(uri, splits):
    artifact = standard_artifacts.Examples()
    artifact.uri = uri
    artifact.split_names = artifact_utils.encode_split_names(splits)
    return artifact


@pytest.fixture(scope="module")
def setup(tiny_data, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("retrieval_evaluator"))
    counts = _train_counts(tiny_data)
    return {
        "root": root,
        "examples": _examples_artifact(tiny_data.examples, ["train", "eval"]),
        "catalog": _examples_artifact(tiny_data.catalog, ["catalog"]),
        "popularity": _model_artifact(root, "popularity", counts, 11),
        "random": _model_artifact(root, "random", counts, 12),
    }


def _run(setup, name, model, baseline=None, **props):
    out = {}
    for key, cls in (
        ("evaluation", standard_artifacts.ModelEvaluation),
        ("blessing", standard_artifacts.ModelBlessing),
    ):
        out[key] = cls()
        out[key].uri = os.path.join(setup["root"], name, key)
        os.makedirs(out[key].uri)
    inputs = {"model": [model], "examples": [setup["examples"]], "catalog": [setup["catalog"]]}
    inputs["baseline_model"] = [baseline] if baseline else []
    E.Executor().Do(inputs, {k: [v] for k, v in out.items()}, props)
    with open(os.path.join(out["evaluation"].uri, E.METRICS_FILE)) as f:
        report = json.load(f)
    return report, out["blessing"]


def _eval_positives(tiny_data) -> int:
    files = glob.glob(tiny_data.raw("eval"))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return sum(example_codec.decode(r.numpy(), F.SEQUENCE_FEATURES)[F.LABEL] == 1 for r in records)


def test_eval_data_excludes_history(setup, tiny_data):
    data = E.load_eval_data(setup["examples"], setup["catalog"], "eval", exclude_split="")
    wider = E.load_eval_data(setup["examples"], setup["catalog"], "eval", exclude_split="train")
    assert len(data.targets) == _eval_positives(tiny_data) > 0
    assert np.all(data.targets >= 0)  # BehaviorSequenceGen keeps catalog items only
    item_index = {item: i for i, item in enumerate(data.candidates[F.ITEM_ID])}
    for row, history in enumerate(data.queries[F.HISTORY_ITEM_IDS]):
        expected = {item_index[h] for h in history if h != F.PAD.encode()}
        assert set(data.exclude[row]) == expected
        assert set(wider.exclude[row]) >= expected


def test_popularity_model_is_blessed_and_writes_metrics_and_plot(setup, tiny_data):
    report, blessing = _run(setup, "popularity", setup["popularity"])
    metrics = report["model"]
    assert set(M.METRICS) <= set(metrics) and metrics["num_queries"] == _eval_positives(tiny_data)
    assert report["blessed"] is True and report["baseline"] is None
    assert len(report["recall_curve"]["model"]) == 100
    assert metrics["hr@10"] == report["recall_curve"]["model"][9]
    with open(os.path.join(setup["root"], "popularity", "evaluation", E.PLOT_FILE), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert blessing.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
    assert blessing.get_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY) == 11
    assert os.path.exists(os.path.join(blessing.uri, constants.BLESSED_FILE_NAME))


def test_absolute_threshold_blocks_the_blessing(setup):
    report, blessing = _run(setup, "strict", setup["popularity"], min_hr_at_10=0.99)
    assert report["blessed"] is False
    assert any(r.startswith("hr@10 = ") and "threshold 0.9900" in r for r in report["reasons"])
    assert blessing.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 0
    assert os.path.exists(os.path.join(blessing.uri, constants.NOT_BLESSED_FILE_NAME))


def test_broken_model_is_not_blessed_against_the_baseline(setup):
    report, blessing = _run(
        setup, "random", setup["random"], setup["popularity"], max_regression=0.05
    )
    assert report["blessed"] is False
    assert report["model"]["hr@100"] < report["baseline"]["hr@100"]
    assert any("regressed from the baseline" in r for r in report["reasons"])
    assert len(report["recall_curve"]["baseline"]) == 100
    assert blessing.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 0
    assert blessing.get_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY) == 11
