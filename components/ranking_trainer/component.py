"""RankingTrainer: TFX's Trainer whose `base_model` must hold a ranking SavedModel.

A base model that is missing, empty or of another family (components/baseline_inputs.py)
is dropped before `run_fn` runs: training starts cold and the model says why
(custom property `baseline`).
"""

from __future__ import annotations

from tfx.components.trainer import component as trainer_component
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import executor_spec

from components import baseline_inputs as B


class Executor(B.BaselineInputsMixin, trainer_executor.GenericExecutor):
    """TFX's GenericExecutor with a checked ranking base model."""

    BASELINE_FAMILIES = {"base_model": B.RANKING}


class RankingTrainer(trainer_component.Trainer):
    """TFX's Trainer (same arguments) running `Executor`."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
