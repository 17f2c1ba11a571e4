"""RetrievalEvaluator component: spec and wiring (logic lives in `metrics`)."""

from __future__ import annotations

import dataclasses

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.retrieval_evaluator import executor
from components.retrieval_evaluator import metrics as M

_THRESHOLDS = {
    f.name: ExecutionParameter(type=float, optional=True)
    for f in dataclasses.fields(M.BlessingConfig)
}


class RetrievalEvaluatorSpec(types.ComponentSpec):
    """Inputs: the model (and a baseline), raw eval examples, the catalog. Outputs: see below."""

    PARAMETERS = {
        **_THRESHOLDS,  # min_hr_at_10, ..., min_coverage_at_10, max_regression
        "eval_split": ExecutionParameter(type=str, optional=True),
        "exclude_split": ExecutionParameter(type=str, optional=True),
        "batch_size": ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "catalog": ChannelParameter(type=standard_artifacts.Examples),
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class RetrievalEvaluator(base_component.BaseComponent):
    """B1 metrics of a retrieval model by exact search over the catalog, and its blessing.

    Queries are the label == 1 events of `eval_split`; each ranks the whole
    catalog, without the items the user interacted with before the target (the
    example's history, plus the user's earlier items in `exclude_split`; "" to
    use the history only). Outputs `evaluation` (metrics.json, recall_at_k.png)
    and `blessing` (custom property `blessed` = 1/0, BLESSED / NOT_BLESSED file,
    `current_model_id` for a LatestBlessedModelStrategy Resolver).
    """

    SPEC_CLASS = RetrievalEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        examples: types.BaseChannel,
        catalog: types.BaseChannel,
        baseline_model: types.BaseChannel | None = None,
        blessing: M.BlessingConfig | None = None,
        eval_split: str = "eval",
        exclude_split: str = "train",
        batch_size: int = 256,
    ):
        """Wires the component.

        Args:
            model: the retrieval Model (SavedModel at <uri>/Format-Serving).
            examples: BehaviorSequenceGen's raw sequence Examples.
            catalog: BehaviorSequenceGen's catalog Examples (split "catalog").
            baseline_model: optional latest blessed Model (from a Resolver).
            blessing: thresholds and the allowed regression against the baseline.
            eval_split: the split whose positive events are the queries.
            exclude_split: the split whose earlier items are also excluded ("" for none).
            batch_size: queries (and items) per embedding call and per matmul.
        """
        blessing = blessing or M.BlessingConfig()
        spec = RetrievalEvaluatorSpec(
            model=model,
            examples=examples,
            catalog=catalog,
            baseline_model=baseline_model,
            eval_split=eval_split,
            exclude_split=exclude_split,
            batch_size=batch_size,
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            **dataclasses.asdict(blessing),
        )
        super().__init__(spec=spec)
