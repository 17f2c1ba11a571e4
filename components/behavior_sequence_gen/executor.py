"""BehaviorSequenceGen executor: a thin Do around `transforms.build`."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import tensorflow as tf
from absl import logging
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from components.behavior_sequence_gen import sequences as S
from components.behavior_sequence_gen import transforms
from schemas import features as F

INPUT_KEYS = {F.INTERACTIONS: "interactions", F.ITEMS: "items", F.USERS: "users"}
REPORT_PROPERTIES = ("train_examples", "eval_examples", "catalog_items", "users")


# Optional execution properties: TFX leaves them out when None, and None has a meaning
# here (an implicit log; no cutoff; no per-user cap), so absence must not fall back to
# a default.
OPTIONAL_PROPERTIES = ("rating_threshold", "cutoff_timestamp", "max_events_per_user")


def config_from_properties(props: dict[str, Any]) -> S.SequenceConfig:
    """Rebuilds the SequenceConfig from the component's execution properties."""
    fields = {f: props[f] for f in S.SequenceConfig.__dataclass_fields__ if f in props}
    fields.update({f: props.get(f) for f in OPTIONAL_PROPERTIES})
    return S.SequenceConfig(**fields)


def _input_pattern(artifacts: list[types.Artifact]) -> str:
    artifact = artifact_utils.get_single_instance(artifacts)
    split = artifact_utils.decode_split_names(artifact.split_names)[0]
    return os.path.join(artifact_utils.get_split_uri([artifact], split), "*")


LOCAL_RUNNERS = (None, "DirectRunner", "direct", "BundleBasedDirectRunner", "SwitchingDirectRunner")


def shard_count(pattern: str, shard_mib: int, beam_args: list[str] | None) -> int:
    """How many user shards the run groups one at a time: 1 on a distributed runner or
    with shard_mib 0, else ceil(MiB of the files matching pattern / shard_mib)."""
    runner = PipelineOptions(list(beam_args or [])).view_as(StandardOptions).runner
    if shard_mib == 0 or runner not in LOCAL_RUNNERS:
        return 1
    size = sum(tf.io.gfile.stat(p).length for p in tf.io.gfile.glob(pattern))
    return max(1, math.ceil(size / (shard_mib * 2**20)))


class Executor(base_beam_executor.BaseBeamExecutor):
    """Joins the tables and writes sequence examples, the catalog and a report."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        cfg = config_from_properties(exec_properties)
        patterns = {
            t: _input_pattern(input_dict[k]) for t, k in INPUT_KEYS.items() if input_dict.get(k)
        }
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        catalog = artifact_utils.get_single_instance(output_dict["catalog"])
        shards = shard_count(
            patterns[F.INTERACTIONS], cfg.local_shard_mib, self._beam_pipeline_args
        )
        if shards == 1:
            with self._make_beam_pipeline() as pipeline:
                transforms.build(pipeline, patterns, examples.uri, catalog.uri, cfg)
        else:
            self._sharded(patterns, examples.uri, catalog.uri, cfg, shards)
        for artifact, splits in ((examples, [S.TRAIN, S.EVAL]), (catalog, ["catalog"])):
            artifact.split_names = artifact_utils.encode_split_names(splits)
            examples_utils.set_payload_format(artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
        with open(os.path.join(examples.uri, transforms.REPORT_FILE)) as f:
            report = json.load(f)
        for key, value in report.items():
            examples.set_int_custom_property(key, int(value))
        examples.set_float_custom_property(F.NEGATIVE_POWER_PROPERTY, cfg.negative_power)
        examples.set_int_custom_property(F.NEGATIVE_RATIO_PROPERTY, cfg.negative_ratio)
        logging.info("BehaviorSequenceGen report: %s", report)
        check_report(report)

    def _sharded(self, patterns, examples_uri, catalog_uri, cfg, shards: int) -> None:
        """Groups the users shard by shard (one Beam pass each), then writes the outputs
        from the shards' timelines in a last pass; the shard files are then removed."""
        shard_dir = os.path.join(self._get_tmp_dir(), "behavior_sequence_shards")
        if tf.io.gfile.exists(shard_dir):  # a retried execution's leftovers
            tf.io.gfile.rmtree(shard_dir)
        for shard in range(shards):
            logging.info("BehaviorSequenceGen: user shard %d of %d", shard + 1, shards)
            with self._make_beam_pipeline() as pipeline:
                transforms.build_shard(pipeline, patterns, shard_dir, cfg, shard, shards)
        logging.info("BehaviorSequenceGen: examples from %d shards", shards)
        with self._make_beam_pipeline() as pipeline:
            transforms.build_from_shards(
                pipeline, patterns, shard_dir, examples_uri, catalog_uri, cfg
            )
        tf.io.gfile.rmtree(shard_dir)


def check_report(report: dict[str, int]) -> None:
    """Fails on an empty result: an empty split is an error, never an empty model later."""
    if not report.get("train_examples"):
        raise ValueError(
            "BehaviorSequenceGen produced no training examples "
            f"(report: {report}). Check that the interactions name items of the item table "
            "and that users have events before their eval target."
        )
    if not report.get("eval_examples"):
        raise ValueError(
            f"BehaviorSequenceGen produced no eval examples (report: {report}). "
            "With split='time_cutoff', check that cutoff_timestamp falls inside the data."
        )
