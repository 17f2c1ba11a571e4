"""What create_pipeline wires besides DESIGN §4's DAG, the same on every orchestrator.

- The per-family baselines (components/baselines): one Resolver (the latest
  baseline record, by type alone, which is all TFX's KFP v2 compiler keeps; none
  found is a first run, components/baselines/resolver.py) ->
  BaselineLoader (one Model per family) -> the miner, both trainers (warm start)
  and both evaluators (regression baselines); BaselinePublisher writes the next
  record after both evaluators.
- The KFP RuntimeParameters' places: `values` gives each parameter name its value
  in this pipeline: the config's plain value, or the RuntimeParameter a KFP
  compile passes (pipeline/runtime.py). create_pipeline puts each in its
  component; no executor is swapped afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping

from tfx import v1 as tfx
from tfx.orchestration import data_types
from tfx.types.channel import Channel

from components.baselines.component import RECORD_TYPE, BaselineLoader, BaselinePublisher
from components.baselines.resolver import LatestArtifactResolver
from pipeline import kfp_params as P
from pipeline.config import PipelineConfig

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
