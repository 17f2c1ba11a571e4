"""ScannIndexBuilder component: spec and wiring (logic in `params`, `index`, `evaluate`)."""

from __future__ import annotations

import dataclasses

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.scann_index_builder import executor
from models.search.params import IndexConfig


class ItemIndex(types.Artifact):
    """A searchable item index: files under `<uri>/index` (see index.load_index)."""

    TYPE_NAME = "components.ItemIndex"  # KFP v2 wants `<module>.<Class>` as schema title


_CONFIG = {
    f.name: ExecutionParameter(type=float if f.name == "recall_threshold" else int, optional=True)
    for f in dataclasses.fields(IndexConfig)
}


class ScannIndexBuilderSpec(types.ComponentSpec):
    """Inputs: the retrieval model, raw eval examples, the catalog. Outputs: see below."""

    PARAMETERS = {
        **_CONFIG,  # k, recall_threshold, exact_below, ..., reorder
        "eval_split": ExecutionParameter(type=str, optional=True),
        "batch_size": ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "catalog": ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        "index": ChannelParameter(type=ItemIndex),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class ScannIndexBuilder(base_component.BaseComponent):
    """Embeds the catalog, builds a ScaNN index (exact for small catalogs), measures, blesses.

    The index parameters follow the catalog size (params.choose_params) unless
    `config` overrides them. Recall@k of the ScaNN and the portable searchers
    is measured against exact search on the label == 1 events of `eval_split`,
    with single-query and batched latency. Outputs `index` (ItemIndex: the
    index files and metrics.json) and `blessing` (ModelBlessing: BLESSED when
    both recalls >= config.recall_threshold; custom property `blessed` = 1/0).
    """

    SPEC_CLASS = ScannIndexBuilderSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        examples: types.BaseChannel,
        catalog: types.BaseChannel,
        config: IndexConfig | None = None,
        eval_split: str = "eval",
        batch_size: int = 256,
    ):
        """Wires the component.

        Args:
            model: the retrieval Model (SavedModel at <uri>/Format-Serving).
            examples: BehaviorSequenceGen's raw sequence Examples.
            catalog: BehaviorSequenceGen's catalog Examples (split "catalog").
            config: k, recall threshold, exact_below and parameter overrides.
            eval_split: the split whose positive events are the queries.
            batch_size: rows per embedding call and per batched search.
        """
        config = config or IndexConfig()
        spec = ScannIndexBuilderSpec(
            model=model,
            examples=examples,
            catalog=catalog,
            eval_split=eval_split,
            batch_size=batch_size,
            index=types.Channel(type=ItemIndex),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            **{k: v for k, v in dataclasses.asdict(config).items() if v is not None},
        )
        super().__init__(spec=spec)
