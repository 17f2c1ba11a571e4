"""BaselinePublisher and BaselineLoader: per-family baselines that compile to distinct queries.

Why a record and not a resolver per family: TFX 1.16's KFP v2 compiler turns a
Resolver into a query on the artifact type alone (`schema_title="tfx.Model" AND
state=LIVE`, plus `blessed=1` for ModelBlessing), drops the producer, and gives
every custom type the same title `tfx.Artifact`. Two "latest blessed model"
resolvers therefore select the same newest blessing whichever family (or
ScannIndexBuilder) wrote it. Here one Resolver (LatestArtifactStrategy) asks for
the latest `simple_artifacts.File`, a type with its own title (`tfx.File`) that
only BaselinePublisher produces in this pipeline (tests/pipeline/test_kfp_ir.py
checks it on the compiled JSON); the record inside names each family's latest
blessed model. The same Resolver runs on the local, Beam and KFP runners.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.experimental import simple_artifacts

from components.baselines import executor

RECORD_TYPE = simple_artifacts.File
_MODEL, _BLESSING = standard_artifacts.Model, standard_artifacts.ModelBlessing


class BaselinePublisherSpec(types.ComponentSpec):
    """Both families' models and blessings of this run, and the previous record."""

    PARAMETERS = {}
    INPUTS = {
        "retrieval_model": ChannelParameter(type=_MODEL),
        "retrieval_blessing": ChannelParameter(type=_BLESSING),
        "ranking_model": ChannelParameter(type=_MODEL),
        "ranking_blessing": ChannelParameter(type=_BLESSING),
        "previous": ChannelParameter(type=RECORD_TYPE, optional=True),
    }
    OUTPUTS = {"record": ChannelParameter(type=RECORD_TYPE)}


class BaselinePublisher(base_component.BaseComponent):
    """Writes the next baseline record (record.py): blessed models in, others carried."""

    SPEC_CLASS = BaselinePublisherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.PublisherExecutor)

    def __init__(
        self, retrieval_model, retrieval_blessing, ranking_model, ranking_blessing, previous=None
    ):
        """Wires the component.

        Args:
            retrieval_model, ranking_model: this run's trainers' models.
            retrieval_blessing, ranking_blessing: their evaluators' blessings.
            previous: the latest record (a Resolver's output), optional.
        """
        super().__init__(
            spec=BaselinePublisherSpec(
                retrieval_model=retrieval_model,
                retrieval_blessing=retrieval_blessing,
                ranking_model=ranking_model,
                ranking_blessing=ranking_blessing,
                previous=previous,
                record=types.Channel(type=RECORD_TYPE),
            )
        )


class BaselineLoaderSpec(types.ComponentSpec):
    """The latest record in; one Model per family out (empty when there is none)."""

    PARAMETERS = {}
    INPUTS = {"record": ChannelParameter(type=RECORD_TYPE, optional=True)}
    OUTPUTS = {
        "retrieval_model": ChannelParameter(type=_MODEL),
        "ranking_model": ChannelParameter(type=_MODEL),
    }


class BaselineLoader(base_component.BaseComponent):
    """Copies each family's latest blessed model into a Model output, checked by kind.

    An output with no SavedModel means "no baseline" (first run, nothing blessed, a
    record that cannot be read, or a model of the wrong kind); its custom property
    `baseline` says which. The consumers (components/baseline_inputs.py) then run as
    on a first run.
    """

    SPEC_CLASS = BaselineLoaderSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.LoaderExecutor)

    def __init__(self, record=None):
        """Wires the component.

        Args:
            record: the latest baseline record (a Resolver's output), optional.
        """
        super().__init__(
            spec=BaselineLoaderSpec(
                record=record,
                retrieval_model=types.Channel(type=_MODEL),
                ranking_model=types.Channel(type=_MODEL),
            )
        )
