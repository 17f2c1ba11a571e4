"""TFX's Evaluator executor on the exported ranker: metrics, slices, GAUC and blessing."""

import json
import os

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as S
from tfx.utils import json_utils, proto_utils

from models.ranking import evaluation, trainer
from schemas import features as F


def artifact(cls, uri, artifact_id=0):
    a = cls()
    a.uri = str(uri)
    a.id = artifact_id
    return a


def run_evaluator(tiny_data, model_uri, out_dir, baseline_uri=None, **config_kwargs):
    """Runs the Evaluator executor; returns (blessed, EvalResult, ValidationResult)."""
    examples = artifact(standard_artifacts.Examples, tiny_data.examples)  # raw, not transformed
    examples.split_names = json_utils.dumps(["train", "eval"])
    schema = artifact(standard_artifacts.Schema, tiny_data.schema)
    inputs = {
        S.EXAMPLES_KEY: [examples],
        S.MODEL_KEY: [artifact(standard_artifacts.Model, model_uri, 1)],
        S.SCHEMA_KEY: [schema],
    }
    if baseline_uri:
        inputs[S.BASELINE_MODEL_KEY] = [artifact(standard_artifacts.Model, baseline_uri, 2)]
    evaluation_dir, blessing_dir = os.path.join(out_dir, "evaluation"), os.path.join(out_dir, "b")
    os.makedirs(evaluation_dir)
    os.makedirs(blessing_dir)
    outputs = {
        S.EVALUATION_KEY: [artifact(standard_artifacts.ModelEvaluation, evaluation_dir)],
        S.BLESSING_KEY: [artifact(standard_artifacts.ModelBlessing, blessing_dir)],
    }
    kwargs = evaluation.evaluator_kwargs(examples=None, model=None, **config_kwargs)
    properties = {
        S.EVAL_CONFIG_KEY: proto_utils.proto_to_json(kwargs["eval_config"]),
        S.EXAMPLE_SPLITS_KEY: json_utils.dumps(kwargs["example_splits"]),
    }
    evaluator_executor.Executor().Do(inputs, outputs, properties)
    blessed = os.path.exists(os.path.join(blessing_dir, "BLESSED"))
    assert blessed != os.path.exists(os.path.join(blessing_dir, "NOT_BLESSED"))
    model_name = "candidate" if baseline_uri else None  # TFMA's names with a baseline
    return (
        blessed,
        tfma.load_eval_result(evaluation_dir, model_name=model_name),
        tfma.load_validation_result(evaluation_dir),
    )


def degrade(model_dir, out_dir):
    """A copy of an exported ranker with every weight zeroed (constant predictions)."""
    loaded = tf.saved_model.load(os.path.join(model_dir, "Format-Serving"))
    for v in loaded.model_variables:
        v.assign(tf.zeros_like(v))
    signatures = {name: loaded.signatures[name] for name in loaded.signatures}
    tf.saved_model.save(loaded, os.path.join(out_dir, "Format-Serving"), signatures=signatures)
    return out_dir


def metric(result, name, slice_key=()):
    for key, metrics in result.slicing_metrics:
        if key == slice_key:
            return metrics[""][""][name]["doubleValue"]
    raise KeyError(slice_key)


@pytest.fixture(scope="module")
def good_model(ranker_run):
    return os.path.dirname(ranker_run.serving_model_dir)


def test_metrics_slices_and_blessing_against_itself(tiny_data, ranker_run, good_model, tmp_path):
    blessed, result, validation = run_evaluator(tiny_data, good_model, tmp_path, good_model)
    assert blessed and validation.validation_ok  # no change against an identical baseline
    with open(os.path.join(ranker_run.model_run_dir, trainer.SUMMARY_FILE)) as f:
        summary = json.load(f)["eval"]
    assert metric(result, "example_count") == summary["examples"]
    # The raw-feature model in TFMA reproduces the trainer's in-memory evaluation.
    assert metric(result, "gauc") == pytest.approx(summary["gauc"], abs=1e-4)
    assert metric(result, "auc") == pytest.approx(summary["auc"], abs=5e-3)  # TFMA buckets
    assert metric(result, "binary_crossentropy") == pytest.approx(summary["logloss"], abs=1e-3)
    for name in ("calibration", "mean_label", "mean_prediction"):
        metric(result, name)
    sliced = {key[0][0] for key, _ in result.slicing_metrics if key}
    assert sliced == {F.GENDER, F.OCCUPATION, F.AGE, F.HISTORY_BUCKET}
    assert result.plots  # the calibration plot


def test_degraded_model_is_not_blessed(tiny_data, good_model, tmp_path):
    bad = degrade(good_model, tmp_path / "degraded")
    # No absolute floor: the change threshold against the good baseline alone must refuse it.
    blessed, result, validation = run_evaluator(
        tiny_data, bad, tmp_path / "eval", good_model, auc_lower_bound=0.0
    )
    assert not blessed and not validation.validation_ok
    assert metric(result, "auc") == pytest.approx(0.5, abs=1e-3)  # constant predictions
    failures = validation.metric_validations_per_slice[0].failures
    assert [f.metric_key.name for f in failures] == ["auc"]
    assert failures[0].metric_threshold.HasField("change_threshold")


def test_absolute_threshold_without_baseline(tiny_data, good_model, tmp_path):
    # The first model has no baseline: only the absolute floor applies.
    assert run_evaluator(tiny_data, good_model, tmp_path / "a")[0]
    assert not run_evaluator(tiny_data, good_model, tmp_path / "b", auc_lower_bound=0.99)[0]


def test_eval_config_validates_its_arguments():
    with pytest.raises(ValueError, match="auc_lower_bound"):
        evaluation.eval_config(auc_lower_bound=1.5)
    with pytest.raises(ValueError, match="tolerance"):
        evaluation.eval_config(auc_tolerance=-0.1)
    config = evaluation.eval_config(gauc_tolerance=0.02)
    (spec,) = config.metrics_specs  # one spec: GAUC groups by user in its own combiner
    assert not spec.query_key
    (gauc,) = [m for m in spec.metrics if m.class_name == "GAUC"]
    assert json.loads(gauc.config) == {"user_key": F.USER_ID}
    assert gauc.per_slice_thresholds[0].threshold.change_threshold.absolute.value == -0.02
