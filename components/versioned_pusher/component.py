"""VersionedPusher component: spec and wiring (logic lives in `push`)."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.versioned_pusher import executor

# The gates: every one must be present and blessed for a push.
GATES = ("ranking_blessing", "retrieval_blessing", "index_blessing", "canary_blessing")


class VersionedPusherSpec(types.ComponentSpec):
    """The combined model, the four gates, and where to push."""

    PARAMETERS = {
        "serving_dir": ExecutionParameter(type=str),
        "model_name": ExecutionParameter(type=str),
        "keep_versions": ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "ranking_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "retrieval_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "index_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "canary_blessing": ChannelParameter(type=standard_artifacts.InfraBlessing),
    }
    OUTPUTS = {"pushed_model": ChannelParameter(type=standard_artifacts.PushedModel)}


class VersionedPusher(base_component.BaseComponent):
    """Pushes each variant of the combined model to `<serving_dir>/<name>/<version>/`.

    Runs the push only when the ranker Evaluator, the RetrievalEvaluator, the index
    builder and the canary all blessed it; otherwise it records why and leaves the
    served versions untouched. Variant `portable` goes to `model_name`, any other
    variant V to `<model_name>_<V>`. Each version is written beside and renamed into
    place; the newest `keep_versions` are kept. `pushed_model` gets custom properties
    `pushed` (1/0), `pushed_version`, `pushed_destination` and a `push.json`.
    """

    SPEC_CLASS = VersionedPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        ranking_blessing: types.BaseChannel,
        retrieval_blessing: types.BaseChannel,
        index_blessing: types.BaseChannel,
        canary_blessing: types.BaseChannel,
        serving_dir: str,
        model_name: str = "recommender",
        keep_versions: int = 5,
    ):
        if keep_versions < 1:
            raise ValueError(f"keep_versions must be >= 1, got {keep_versions}")
        spec = VersionedPusherSpec(
            model=model,
            ranking_blessing=ranking_blessing,
            retrieval_blessing=retrieval_blessing,
            index_blessing=index_blessing,
            canary_blessing=canary_blessing,
            serving_dir=serving_dir,
            model_name=model_name,
            keep_versions=keep_versions,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
        )
        super().__init__(spec=spec)
