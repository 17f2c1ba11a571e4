"""HardNegativeMiner component: the HardNegatives artifact, spec and wiring (logic in `mining`)."""

from __future__ import annotations

import dataclasses

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.hard_negative_miner import executor, mining


class HardNegatives(artifact.Artifact):
    """Hard negatives mined with the last blessed models.

    Files: `{uri}/hard_negatives.tsv` (`user_id<TAB>item_id item_id ...`, empty when
    no blessed model existed) and `{uri}/report.json`; the report's counts are
    also custom properties (users_mined, negatives, negatives_per_user, seconds, status).
    """

    # KFP v2 uses TYPE_NAME as the schema title (`<module>.<Class>`, one dot) and its
    # container imports the class by that path: `components` must expose HardNegatives.
    TYPE_NAME = "components.HardNegatives"


class HardNegativeMinerSpec(types.ComponentSpec):
    """Inputs: the blessed models (optional), raw sequence Examples, the catalog."""

    PARAMETERS = {
        **{
            f.name: ExecutionParameter(type=int, optional=True)
            for f in dataclasses.fields(mining.MiningConfig)
        },  # top_n, top_k, max_per_user, batch_size
        "split": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        "retrieval_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        "ranking_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "catalog": ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {"hard_negatives": ChannelParameter(type=HardNegatives)}


class HardNegativeMiner(base_component.BaseComponent):
    """Items the last blessed retriever returns for a user but the blessed ranker rejects.

    For each user (from the user's most recent example of `split`: history and user
    features): exact top-N retrieval over the catalog without the user's items, the
    ranker's scores for those N, and the ones outside the ranker's top K, best
    retrieved first, at most `max_per_user`. Without both blessed models (the first
    run) the TSV is empty and `status` says why.
    """

    SPEC_CLASS = HardNegativeMinerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        catalog: types.BaseChannel,
        retrieval_model: types.BaseChannel | None = None,
        ranking_model: types.BaseChannel | None = None,
        config: mining.MiningConfig | None = None,
        split: str = "train",
    ):
        """Wires the component.

        Args:
            examples: BehaviorSequenceGen's raw sequence Examples.
            catalog: BehaviorSequenceGen's catalog Examples (split "catalog").
            retrieval_model: the latest blessed two-tower Model (Resolver output).
            ranking_model: the latest blessed DIN Model (Resolver output).
            config: top_n, top_k, max_per_user, batch_size (validated here).
            split: the split whose latest example per user is the query.
        """
        config = config or mining.MiningConfig()
        spec = HardNegativeMinerSpec(
            examples=examples,
            catalog=catalog,
            retrieval_model=retrieval_model,
            ranking_model=ranking_model,
            split=split,
            hard_negatives=types.Channel(type=HardNegatives),
            **dataclasses.asdict(config),
        )
        super().__init__(spec=spec)
