"""RetrievalTrainer: TFX's Trainer (same spec and executor family) plus `hard_negatives`."""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.trainer import component as trainer_component
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import json_utils

from components.hard_negative_miner.component import HardNegatives
from components.retrieval_trainer import executor

RETRIEVAL_RUN_FN = "models.retrieval.trainer.run_fn"


class RetrievalTrainerSpec(standard_component_specs.TrainerSpec):
    """TrainerSpec with the mined HardNegatives and the update mode (both optional)."""

    PARAMETERS = {
        **standard_component_specs.TrainerSpec.PARAMETERS,
        executor.UPDATE_MODE: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        **standard_component_specs.TrainerSpec.INPUTS,
        executor.HARD_NEGATIVES_KEY: ChannelParameter(type=HardNegatives, optional=True),
    }


class RetrievalTrainer(trainer_component.Trainer):
    """The two-tower Trainer: `run_fn` by dotted path, optional mined hard negatives.

    Outputs `model` and `model_run` as TFX's Trainer. `hyperparameters` (TrainerSpec's
    own input, e.g. a Tuner's `best_hyperparameters`) reaches run_fn as
    fn_args.hyperparameters through GenericExecutor. When `hard_negatives` resolves
    to an artifact whose TSV has lines, the executor sets the retrieval config's
    `mined_negatives_path` to it before `run_fn` runs; otherwise training is unchanged.
    """

    SPEC_CLASS = RetrievalTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        transform_graph: types.BaseChannel | None = None,
        schema: types.BaseChannel | None = None,
        base_model: types.BaseChannel | None = None,
        hard_negatives: types.BaseChannel | None = None,
        hyperparameters: types.BaseChannel | None = None,
        run_fn: str = RETRIEVAL_RUN_FN,
        train_args: trainer_pb2.TrainArgs | None = None,
        eval_args: trainer_pb2.EvalArgs | None = None,
        custom_config: dict[str, Any] | None = None,
        update_mode=None,
        vertex: bool = False,
    ):
        """Wires the component (arguments as TFX's Trainer, without module_file).

        Args:
            examples: transformed Examples.
            transform_graph: Transform's graph.
            schema: the schema.
            base_model: the latest blessed Model (warm start), optional.
            hard_negatives: HardNegativeMiner's output, optional.
            hyperparameters: HyperParameters (the Tuner's best_hyperparameters), optional.
            run_fn: dotted path of the run_fn.
            train_args: TrainArgs (default: empty, every train example).
            eval_args: EvalArgs.
            custom_config: {CUSTOM_CONFIG_KEY: RetrievalConfig.to_dict()}.
            update_mode: "full" / "incremental" (or a str RuntimeParameter) replacing the
                config's mode at run time; None keeps it.
            vertex: run as a Vertex AI CustomJob (`executor.VertexExecutor`; custom_config
                then holds the job, pipeline/wiring.py trainer_custom_configs).
        """
        if not run_fn:
            raise ValueError("RetrievalTrainer.run_fn must be a dotted path, got an empty value")
        spec = RetrievalTrainerSpec(
            examples=examples,
            transform_graph=transform_graph,
            schema=schema,
            base_model=base_model,
            hard_negatives=hard_negatives,
            hyperparameters=hyperparameters,
            train_args=train_args or trainer_pb2.TrainArgs(),
            eval_args=eval_args or trainer_pb2.EvalArgs(),
            run_fn=run_fn,
            custom_config=json_utils.dumps(custom_config),
            update_mode=update_mode,
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun),
        )
        # Trainer.__init__ would build a plain TrainerSpec; the base does the rest.
        custom = executor_spec.ExecutorClassSpec(executor.VertexExecutor) if vertex else None
        base_component.BaseComponent.__init__(self, spec=spec, custom_executor_spec=custom)
