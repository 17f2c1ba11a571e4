"""RankingEvaluator's executor: TFX's Evaluator after two input fixes.

- `ranking_min_auc` (a float exec property, a KFP RuntimeParameter when compiled)
  becomes the lower bound of every AUC value threshold of `eval_config`: TFX
  cannot place a RuntimeParameter inside the proto. Absent or None keeps the
  compiled value.
- `baseline_model` is kept only when it holds a ranking SavedModel
  (components/baseline_inputs.py); otherwise the model is judged without a
  baseline (TFMA skips change thresholds) and the blessing says why.
"""

from __future__ import annotations

from collections.abc import Mapping

from tfx.components.evaluator import executor as evaluator_executor
from tfx.utils import proto_utils

from components import baseline_inputs as B

RANKING_MIN_AUC, EVAL_CONFIG, AUC = "ranking_min_auc", "eval_config", "AUC"


def _auc_value_thresholds(config) -> list:
    """Every value threshold (overall and per slice) of the AUC metrics of an EvalConfig."""
    found = []
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            if metric.class_name != AUC:
                continue
            thresholds = [metric.threshold] + [s.threshold for s in metric.per_slice_thresholds]
            found += [t.value_threshold for t in thresholds if t.HasField("value_threshold")]
    return found


def with_min_auc(exec_properties: Mapping) -> dict:
    """A copy of the Evaluator's exec properties with RANKING_MIN_AUC set in eval_config.

    Raises:
        ValueError: the value is outside [0, 1], or eval_config has no AUC value threshold.
    """
    import tensorflow_model_analysis as tfma

    props = dict(exec_properties)
    value = props.pop(RANKING_MIN_AUC, None)
    if value is None:
        return props
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"runtime parameter {RANKING_MIN_AUC}={value}: must be in [0, 1]")
    config = proto_utils.json_to_proto(props.get(EVAL_CONFIG) or "{}", tfma.EvalConfig())
    bounds = _auc_value_thresholds(config)
    if not bounds:
        raise ValueError(f"{EVAL_CONFIG} has no AUC value threshold to set {RANKING_MIN_AUC} on")
    for bound in bounds:
        bound.lower_bound.value = value
    props[EVAL_CONFIG] = proto_utils.proto_to_json(config)
    return props


class Executor(B.BaselineInputsMixin, evaluator_executor.Executor):
    """TFX's Evaluator with the AUC floor from `ranking_min_auc` and a checked baseline."""

    BASELINE_FAMILIES = {"baseline_model": B.RANKING}

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        return super().Do(input_dict, output_dict, with_min_auc(exec_properties))
