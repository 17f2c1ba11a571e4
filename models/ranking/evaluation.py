"""TFMA EvalConfig for TFX's Evaluator on the ranker, and the Evaluator's arguments.

The model's `serving_default` takes serialized raw tf.Examples, so the Evaluator reads the
RAW sequence examples (BehaviorSequenceGen's `examples`, eval split), not Transform's output.

Blessing: AUC on the overall slice must be >= `auc_lower_bound` and, when a baseline (the
last blessed model) exists, must not drop by more than `auc_tolerance` below the baseline's
AUC. Without a baseline the change threshold is skipped (TFX rubber-stamps the first model).
"""

from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from models.ranking.export import PROBABILITIES, SERVING_DEFAULT
from models.ranking.gauc import GAUC
from schemas import features as F

SLICE_FEATURES = (F.GENDER, F.OCCUPATION, F.AGE, F.HISTORY_BUCKET)
EVALUATOR_SPLITS = ("eval",)


def _threshold(lower_bound: float | None, tolerance: float | None) -> tfma.MetricThreshold:
    threshold = tfma.MetricThreshold()
    if lower_bound is not None:
        threshold.value_threshold.lower_bound.value = lower_bound
    if tolerance is not None:
        threshold.change_threshold.direction = tfma.MetricDirection.HIGHER_IS_BETTER
        threshold.change_threshold.absolute.value = -abs(tolerance)
    return threshold


def _overall_only(threshold: tfma.MetricThreshold) -> list[tfma.PerSliceMetricThreshold]:
    """Thresholds checked on the overall slice only (small slices are too noisy to gate)."""
    return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]


def _metrics(auc_threshold: tfma.MetricThreshold, calibration_buckets: int) -> list:
    """The per-example metrics; AUC carries the blessing threshold (overall slice)."""
    return [
        tfma.MetricConfig(class_name="ExampleCount"),
        tfma.MetricConfig(class_name="AUC", per_slice_thresholds=_overall_only(auc_threshold)),
        tfma.MetricConfig(class_name="BinaryCrossEntropy"),
        tfma.MetricConfig(class_name="Calibration"),
        tfma.MetricConfig(class_name="MeanLabel"),
        tfma.MetricConfig(class_name="MeanPrediction"),
        tfma.MetricConfig(
            class_name="CalibrationPlot", config=json.dumps({"num_buckets": calibration_buckets})
        ),
    ]


def eval_config(
    auc_lower_bound: float = 0.55,
    auc_tolerance: float = 0.01,
    gauc_tolerance: float | None = None,
    slice_features: tuple[str, ...] = SLICE_FEATURES,
    calibration_buckets: int = 20,
) -> tfma.EvalConfig:
    """The ranker's EvalConfig: metrics, slices and the thresholds that decide blessing.

    Args:
        auc_lower_bound: absolute AUC floor on the overall slice.
        auc_tolerance: the candidate's AUC may be at most this much below the baseline's.
        gauc_tolerance: the same for GAUC; None puts no threshold on GAUC.
        slice_features: one slice per value of each of these raw features (plus overall).
        calibration_buckets: buckets of the calibration plot.

    Returns:
        metrics AUC, BinaryCrossEntropy (LogLoss), Calibration, MeanLabel, MeanPrediction,
        CalibrationPlot, ExampleCount and GAUC (grouped by F.USER_ID in its own combiner,
        see gauc.py) on each slice.
    """
    if not 0.0 <= auc_lower_bound <= 1.0:
        raise ValueError(f"auc_lower_bound must be in [0, 1], got {auc_lower_bound}")
    if auc_tolerance < 0 or (gauc_tolerance is not None and gauc_tolerance < 0):
        raise ValueError("auc_tolerance and gauc_tolerance must be >= 0")
    metrics = _metrics(_threshold(auc_lower_bound, auc_tolerance), calibration_buckets)
    gauc = tfma.MetricConfig(
        class_name=GAUC.__name__, module=GAUC.__module__, config=json.dumps({"user_key": F.USER_ID})
    )
    if gauc_tolerance is not None:
        gauc.per_slice_thresholds.extend(_overall_only(_threshold(None, gauc_tolerance)))
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=SERVING_DEFAULT,
                label_key=F.LABEL,
                prediction_key=PROBABILITIES,
                model_type=tfma.TF_GENERIC,
            )
        ],
        metrics_specs=[
            tfma.MetricsSpec(metrics=metrics + [gauc]),
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[name]) for name in slice_features],
    )


def evaluator_kwargs(examples, model, baseline_model=None, schema=None, **config_kwargs) -> dict:
    """Keyword arguments for `tfx.components.Evaluator` (see the module docstring).

    Args:
        examples: the RAW sequence examples channel (BehaviorSequenceGen outputs["examples"]).
        model: the ranker Trainer's outputs["model"].
        baseline_model: BaselineLoader's outputs["ranking_model"] (the last blessed ranker).
        schema: optional raw schema channel (ImportSchemaGen outputs["schema"]).
        **config_kwargs: passed to `eval_config`.
    """
    kwargs = {
        "examples": examples,
        "model": model,
        "eval_config": eval_config(**config_kwargs),
        "example_splits": list(EVALUATOR_SPLITS),
    }
    if baseline_model is not None:
        kwargs["baseline_model"] = baseline_model
    if schema is not None:
        kwargs["schema"] = schema
    return kwargs
