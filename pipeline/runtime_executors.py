"""Executors that apply a runtime parameter TFX cannot place inside a dict or a proto.

The compiled pipeline (pipeline/runtime.py) gives the retrieval Trainer a string
exec property `update_mode` and the ranker's Evaluator a float exec property
`ranking_min_auc`. These executors write each value where the stock executor
reads it, then run the stock executor unchanged:
- `update_mode` -> custom_config["retrieval"]["mode"] (read by run_fn),
- `ranking_min_auc` -> the lower bound of every AUC value threshold of eval_config.
A property that is absent or None leaves the compiled value in place. The pure
functions `with_update_mode` and `with_min_auc` hold the logic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.trainer import executor as trainer_executor
from tfx.utils import proto_utils

from components.retrieval_trainer import executor as retrieval_trainer_executor
from models.retrieval.config import CUSTOM_CONFIG_KEY as RETRIEVAL_KEY
from models.retrieval.config import MODES
from pipeline import kfp_params as P

UPDATE_MODE, RANKING_MIN_AUC = P.UPDATE_MODE, P.RANKING_MIN_AUC
CUSTOM_CONFIG, EVAL_CONFIG = "custom_config", "eval_config"
AUC = "AUC"


def with_update_mode(exec_properties: Mapping) -> dict:
    """A copy of the Trainer's exec properties with UPDATE_MODE moved into custom_config.

    Raises:
        ValueError: the mode is not one of MODES, or custom_config is not a JSON object.
    """
    props = dict(exec_properties)
    mode = props.pop(UPDATE_MODE, None)
    if mode is None:
        return props
    if mode not in MODES:
        raise ValueError(f"runtime parameter {UPDATE_MODE}={mode!r}: must be one of {MODES}")
    custom = json.loads(props.get(CUSTOM_CONFIG) or "{}")
    if not isinstance(custom, dict):
        raise ValueError(f"{CUSTOM_CONFIG} must be a JSON object, got {custom!r}")
    custom.setdefault(RETRIEVAL_KEY, {})["mode"] = mode
    props[CUSTOM_CONFIG] = json.dumps(custom, sort_keys=True)
    return props


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


class UpdateModeMixin:
    """Before a Trainer executor runs, moves `update_mode` into the retrieval custom_config."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        return super().Do(input_dict, output_dict, with_update_mode(exec_properties))


class TrainerExecutor(UpdateModeMixin, trainer_executor.GenericExecutor):
    """TFX's generic Trainer executor, with the update mode from a runtime parameter."""


class RetrievalTrainerExecutor(UpdateModeMixin, retrieval_trainer_executor.Executor):
    """components.retrieval_trainer's executor, with the update mode from a runtime parameter."""


# The executor the retrieval Trainer runs -> the same with the update mode applied.
# (The container imports executors by dotted path, so each is a named class.)
UPDATE_MODE_EXECUTORS = {
    trainer_executor.GenericExecutor: TrainerExecutor,
    retrieval_trainer_executor.Executor: RetrievalTrainerExecutor,
}


class EvaluatorExecutor(evaluator_executor.Executor):
    """TFX's Evaluator, with the ranker's AUC floor from a runtime parameter."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        return super().Do(input_dict, output_dict, with_min_auc(exec_properties))
