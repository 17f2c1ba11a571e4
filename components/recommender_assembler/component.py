"""RecommenderAssembler component: spec and wiring (logic lives in `assemble`)."""

from __future__ import annotations

import dataclasses
import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.recommender_assembler import executor
from components.recommender_assembler.assemble import AssemblyConfig
from components.scann_index_builder.component import ItemIndex


class RecommenderAssemblerSpec(types.ComponentSpec):
    """Both trainers' models, the index, eval queries and the catalog -> the combined model."""

    PARAMETERS = {"config": ExecutionParameter(type=str)}  # AssemblyConfig as JSON
    INPUTS = {
        "retrieval_model": ChannelParameter(type=standard_artifacts.Model),
        "ranking_model": ChannelParameter(type=standard_artifacts.Model),
        "index": ChannelParameter(type=ItemIndex),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "catalog": ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "blessing": ChannelParameter(type=standard_artifacts.InfraBlessing),
    }


class RecommenderAssembler(base_component.BaseComponent):
    """One SavedModel per serving variant: query tower -> index -> DIN rerank -> top K.

    `model` holds `<uri>/portable/` (stock TF ops) and `<uri>/scann/` (ScaNN ops), each
    with signatures serving_default, retrieve, rank and serve_tf_examples (DESIGN §5),
    plus the canary's golden requests and verdicts. `blessing` (an InfraBlessing with
    custom property `blessed`) says whether every variant passed its canary: loaded in a
    fresh process, its answers to golden requests equal the pipeline's own two-stage
    computation, and its single-request p50 holds the latency budget.
    """

    SPEC_CLASS = RecommenderAssemblerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        retrieval_model: types.BaseChannel,
        ranking_model: types.BaseChannel,
        index: types.BaseChannel,
        examples: types.BaseChannel,
        catalog: types.BaseChannel,
        config: AssemblyConfig | None = None,
    ):
        config = config or AssemblyConfig()
        spec = RecommenderAssemblerSpec(
            retrieval_model=retrieval_model,
            ranking_model=ranking_model,
            index=index,
            examples=examples,
            catalog=catalog,
            config=json.dumps(dataclasses.asdict(config), sort_keys=True),
            model=types.Channel(type=standard_artifacts.Model),
            blessing=types.Channel(type=standard_artifacts.InfraBlessing),
        )
        super().__init__(spec=spec)
