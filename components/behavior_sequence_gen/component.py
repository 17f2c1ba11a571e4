"""BehaviorSequenceGen component: spec and wiring (logic lives in `sequences`)."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.behavior_sequence_gen import executor
from components.behavior_sequence_gen import sequences as S


class BehaviorSequenceGenSpec(types.ComponentSpec):
    """Inputs: the three tables' Examples. Outputs: sequence examples and catalog."""

    PARAMETERS = {
        "history_length": ExecutionParameter(type=int),
        "rating_threshold": ExecutionParameter(type=float, optional=True),
        "negative_ratio": ExecutionParameter(type=int),
        "negative_power": ExecutionParameter(type=float),
        "split": ExecutionParameter(type=str),
        "cutoff_timestamp": ExecutionParameter(type=int, optional=True),
        "seed": ExecutionParameter(type=int),
        "negative_exclusion": ExecutionParameter(type=str),
        "max_events_per_user": ExecutionParameter(type=int, optional=True),
        "local_shard_mib": ExecutionParameter(type=int),
    }
    INPUTS = {
        "interactions": ChannelParameter(type=standard_artifacts.Examples),
        "items": ChannelParameter(type=standard_artifacts.Examples),
        "users": ChannelParameter(type=standard_artifacts.Examples, optional=True),
    }
    OUTPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "catalog": ChannelParameter(type=standard_artifacts.Examples),
    }


class BehaviorSequenceGen(base_beam_component.BaseBeamComponent):
    """Per-event behaviour histories, labels, ranker negatives and a leak-free split.

    Outputs `examples` (splits train, eval; a `report.json` of counts and drops,
    also set as custom properties) and `catalog` (split catalog, one per item).
    """

    SPEC_CLASS = BehaviorSequenceGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        interactions: types.BaseChannel,
        items: types.BaseChannel,
        users: types.BaseChannel | None = None,
        config: S.SequenceConfig | None = None,
    ):
        config = config or S.SequenceConfig()
        spec = BehaviorSequenceGenSpec(
            interactions=interactions,
            items=items,
            users=users,
            history_length=config.history_length,
            rating_threshold=config.rating_threshold,
            negative_ratio=config.negative_ratio,
            negative_power=config.negative_power,
            split=config.split,
            cutoff_timestamp=config.cutoff_timestamp,
            seed=config.seed,
            negative_exclusion=config.negative_exclusion,
            max_events_per_user=config.max_events_per_user,
            local_shard_mib=config.local_shard_mib,
            examples=types.Channel(type=standard_artifacts.Examples),
            catalog=types.Channel(type=standard_artifacts.Examples),
        )
        super().__init__(spec=spec)
