"""RankingTrainer: TFX's Trainer whose `base_model` must hold a ranking SavedModel, plus
the update mode.

A base model that is missing, empty or of another family (components/baseline_inputs.py)
is dropped before `run_fn` runs: training starts cold and the model says why
(custom property `baseline`). `update_mode` (full | incremental, a str RuntimeParameter
on KFP) is moved into `custom_config["ranking"]["mode"]` (components/update_mode.py).
"""

from __future__ import annotations

from tfx.components.trainer import component as trainer_component
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import executor_spec
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor
from tfx.orchestration import data_types

from components import baseline_inputs as B
from components.update_mode import UPDATE_MODE, with_update_mode
from models.ranking.config import CUSTOM_CONFIG_KEY


class Executor(B.BaselineInputsMixin, trainer_executor.GenericExecutor):
    """TFX's GenericExecutor with a checked ranking base model and the update mode."""

    BASELINE_FAMILIES = {"base_model": B.RANKING}

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        props = with_update_mode(exec_properties, CUSTOM_CONFIG_KEY)
        return super().Do(input_dict, output_dict, props)


class VertexExecutor(vertex_executor.GenericExecutor):
    """Runs `Executor` as a Vertex AI CustomJob (TFX's google_cloud_ai_platform Trainer
    extension); custom_config carries the job (pipeline/wiring.py)."""

    def _GetExecutorClass(self):  # noqa: N802 (TFX API)
        return Executor


class RankingTrainer(trainer_component.Trainer):
    """TFX's Trainer (same arguments) running `Executor`, plus `update_mode`."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, update_mode=None, vertex: bool = False, **kwargs):
        """Wires the component.

        Args:
            update_mode: "full" / "incremental" (or a str RuntimeParameter) replacing the
                config's mode at run time; None keeps it. TFX's Trainer builds its own
                TrainerSpec, so this is an extra exec property (the local runners and the
                KFP v2 compiler pass it through, as RankingEvaluator's AUC floor).
            vertex: run as a Vertex AI CustomJob (`VertexExecutor`; custom_config then
                holds the job, pipeline/wiring.py trainer_custom_configs).
            **kwargs: TFX Trainer's arguments.

        Raises:
            TypeError: update_mode is neither a str nor a str RuntimeParameter.
        """
        if vertex:
            kwargs["custom_executor_spec"] = executor_spec.ExecutorClassSpec(VertexExecutor)
        super().__init__(**kwargs)
        if isinstance(update_mode, data_types.RuntimeParameter):
            if update_mode.ptype is not str:
                raise TypeError(f"{UPDATE_MODE}: a str RuntimeParameter expected")
        elif update_mode is not None and not isinstance(update_mode, str):
            raise TypeError(f"{UPDATE_MODE}: a str expected, got {update_mode!r}")
        if update_mode is not None:
            self.exec_properties[UPDATE_MODE] = update_mode
