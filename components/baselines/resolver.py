"""LatestArtifactResolver: the latest artifact of a channel, where nothing found is a first run.

TFX 1.16 reads a Resolver node in two ways:

- the KFP v2 compiler (orchestration/kubeflow/v2/step_builder.py) reads the strategy
  class from `exec_properties` and accepts exactly `LatestArtifactStrategy` or
  `LatestBlessedModelStrategy` (a subclass raises TypeError); it compiles the former
  to a query on the channel's schema title and state. On KFP / Vertex a query that
  matches nothing gives an empty input (pipeline/kfp_local.py does the same);
- the local, Beam and parallel runners evaluate the strategy op of the node's input
  graph (portable/input_resolution/input_graph_resolver.py), and there
  `LatestArtifactStrategy.resolve_artifacts` returns None when a channel is empty,
  which becomes an InputResolutionError: a logged traceback and a FAILED resolver
  execution on every first run (the consumers then run with no input anyway).

This resolver keeps `LatestArtifactStrategy` where the KFP compiler reads it and
runs `LatestOrEmptyStrategy` (the same selection; empty lists instead of None) where
the local runners read it. One node, built once by create_pipeline, the same on every
orchestrator: a first run resolves nothing, successfully, on both.
"""

from __future__ import annotations

from tfx.dsl.components.common import resolver
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy


class LatestOrEmptyStrategy(LatestArtifactStrategy):
    """LatestArtifactStrategy (the newest artifact by id per channel) that returns an empty
    list for a channel with no artifact instead of None (which fails the resolver)."""

    def resolve_artifacts(self, store, input_dict):
        """{key: [the newest artifact] or []}; never None."""
        del store  # the artifacts are in input_dict already
        return self._resolve(input_dict)


class LatestArtifactResolver(resolver.Resolver):
    """`tfx.dsl.Resolver(strategy_class=LatestArtifactStrategy, **channels)` whose empty
    result is a successful resolution with no artifacts (see the module docstring)."""

    def __init__(self, **channels):
        """Wires the node.

        Args:
            **channels: the channels to resolve, by output key.
        """
        super().__init__(strategy_class=LatestOrEmptyStrategy, **channels)

    @classmethod
    def get_class_type(cls) -> str:
        """TFX's Resolver type: the runners pick their resolver handler by this name."""
        return resolver.Resolver.get_class_type()

    @property
    def exec_properties(self):
        """What the KFP v2 compiler reads: LatestArtifactStrategy, the class it supports."""
        return {
            resolver.RESOLVER_STRATEGY_CLASS: LatestArtifactStrategy,
            resolver.RESOLVER_CONFIG: {},
        }
