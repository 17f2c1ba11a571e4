"""What create_pipeline wires besides DESIGN §4's DAG, the same on every orchestrator.

- The per-family baselines (components/baselines): one Resolver (the latest
  baseline record, by type alone, which is all TFX's KFP v2 compiler keeps; none
  found is a first run, components/baselines/resolver.py) ->
  BaselineLoader (one Model per family) -> the miner, both trainers (warm start)
  and both evaluators (regression baselines); BaselinePublisher writes the next
  record after both evaluators.
- Vertex AI training (`PipelineConfig.vertex_training`): `trainer_custom_configs`
  sets both models' tf.distribute strategy to the job shape's and adds the
  CustomJob that TFX's google_cloud_ai_platform Trainer executor launches; both
  Trainer components then run their `VertexExecutor`.
- The KFP RuntimeParameters' places: `values` gives each parameter name its value
  in this pipeline: the config's plain value, or the RuntimeParameter a KFP
  compile passes (pipeline/runtime.py). create_pipeline puts each in its
  component; no executor is swapped afterwards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from tfx import v1 as tfx
from tfx.orchestration import data_types
from tfx.types.channel import Channel

from components.baselines.component import RECORD_TYPE, BaselineLoader, BaselinePublisher
from components.baselines.resolver import LatestArtifactResolver
from models.ranking.config import CUSTOM_CONFIG_KEY as RANKING_CONFIG_KEY
from models.retrieval.config import CUSTOM_CONFIG_KEY as RETRIEVAL_CONFIG_KEY
from pipeline import kfp_params as P
from pipeline.config import PipelineConfig, VertexTraining

RESOLVER, LOADER, PUBLISHER = "latest_baseline_record", "BaselineLoader", "BaselinePublisher"


def baseline_loader() -> tuple:
    """(the Resolver of the latest record, BaselineLoader reading it)."""
    resolver = LatestArtifactResolver(
        record=Channel(type=RECORD_TYPE, producer_component_id=PUBLISHER, output_key="record"),
    ).with_id(RESOLVER)
    loader = BaselineLoader(record=resolver.outputs["record"]).with_id(LOADER)
    return resolver, loader


def baseline_publisher(resolver, retrieval: tuple, ranking: tuple) -> BaselinePublisher:
    """BaselinePublisher of this run's (trainer, evaluator) pairs, carrying `resolver`'s record."""
    (retrieval_trainer, retrieval_evaluator), (ranking_trainer, ranking_evaluator) = (
        retrieval,
        ranking,
    )
    return BaselinePublisher(
        retrieval_model=retrieval_trainer.outputs["model"],
        retrieval_blessing=retrieval_evaluator.outputs["blessing"],
        ranking_model=ranking_trainer.outputs["model"],
        ranking_blessing=ranking_evaluator.outputs["blessing"],
        previous=resolver.outputs["record"],
    ).with_id(PUBLISHER)


def values(config: PipelineConfig, parameters: Mapping | None = None) -> dict:
    """Each runtime parameter's value: `parameters[name]` if given, else the config's.

    Args:
        config: the pipeline config.
        parameters: {name: RuntimeParameter} of a KFP compile, or None (local runs).
    """
    result = {
        P.DATA_ROOT: config.data.path,
        P.TRAIN_ARGS: tfx.proto.TrainArgs(num_steps=config.train_steps),
        P.EVAL_ARGS: tfx.proto.EvalArgs(num_steps=0),
        P.RANKING_MIN_AUC: None,  # eval_config holds config.ranking_min_auc already
        P.UPDATE_MODE: None,  # both custom_configs hold the mode already
    }
    result.update(parameters or {})
    return result


def set_property(component, name: str, value) -> None:
    """Sets exec property `name` when `value` is a RuntimeParameter (plain values are set
    by the component's constructor), type-checked where the spec declares it."""
    if not isinstance(value, data_types.RuntimeParameter):
        return
    declared = component.spec.PARAMETERS.get(name)
    if declared is not None:
        declared.type_check(name, value)
    component.exec_properties[name] = value


def custom_job(vertex: VertexTraining) -> dict:
    """The Vertex AI CustomJob of TFX's Trainer extension (its `ai_platform_training_args`):
    the project, and worker pool 0 (the chief) plus pool 1 (workers - 1 replicas)."""
    machine = {"machine_type": vertex.machine_type}
    if vertex.accelerator_type:
        machine.update(
            accelerator_type=vertex.accelerator_type, accelerator_count=vertex.accelerator_count
        )

    def pool(replicas: int) -> dict:
        return {
            "machine_spec": dict(machine),
            "replica_count": replicas,
            "container_spec": {"image_uri": vertex.image},
        }

    pools = [pool(1)] + ([pool(vertex.workers - 1)] if vertex.workers > 1 else [])
    return {"project": vertex.project, "job_spec": {"worker_pool_specs": pools}}


def trainer_custom_configs(config: PipelineConfig) -> tuple[dict, dict]:
    """(retrieval, ranking) Trainer custom_configs: the model configs, and with
    vertex_training their strategy set to the job's and the CustomJob beside them."""
    retrieval, ranking = config.retrieval, config.ranking
    vertex, extra = config.vertex_training, {}
    if vertex is not None:
        from tfx.extensions.google_cloud_ai_platform import constants
        from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

        retrieval = retrieval.with_overrides(strategy=vertex.strategy)
        ranking = dataclasses.replace(ranking, strategy=vertex.strategy)
        extra = {
            vertex_executor.TRAINING_ARGS_KEY: custom_job(vertex),
            constants.ENABLE_VERTEX_KEY: True,
            constants.VERTEX_REGION_KEY: vertex.region,
        }
    return (
        {RETRIEVAL_CONFIG_KEY: retrieval.to_dict(), **extra},
        {RANKING_CONFIG_KEY: ranking.to_dict(), **extra},
    )
