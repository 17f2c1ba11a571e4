"""Executor of TableExampleGen: reads one raw table with the strict readers of `formats`
and writes it as it reads it, without TFX's global shuffle."""

from __future__ import annotations

import os
from typing import Any

import apache_beam as beam
import tensorflow as tf
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen import utils, write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.table_gen import formats

# Keys of the Struct packed in CustomConfig: the keyword arguments of formats.read_rows.
TABLE, FMT, COLUMN_MAPPING, DELIMITER = "table", "fmt", "column_mapping", "delimiter"


def parse_options(custom_config: Any) -> dict:
    """Unpacks the reader options from the custom_config exec property.

    Args:
        custom_config: what the executor receives: the JSON string of an
            example_gen_pb2.CustomConfig (the usual case), the proto itself, or None.

    Returns:
        {table, fmt, column_mapping, delimiter}, ready for formats.read_rows.

    Raises:
        ValueError: no custom_config, or one that does not hold a Struct with a table.
    """
    if isinstance(custom_config, str):
        custom_config = json_format.Parse(custom_config, example_gen_pb2.CustomConfig())
    struct = struct_pb2.Struct()
    if custom_config is None or not custom_config.custom_config.Unpack(struct):
        raise ValueError(
            "TableExampleGen needs a custom_config packing a google.protobuf.Struct "
            f"with {TABLE!r} and {FMT!r}; got {custom_config!r}"
        )
    options = json_format.MessageToDict(struct)
    if TABLE not in options:
        raise ValueError(f"TableExampleGen custom_config lacks {TABLE!r}: {options}")
    return {
        TABLE: options[TABLE],
        FMT: options.get(FMT, formats.CSV),
        COLUMN_MAPPING: dict(options.get(COLUMN_MAPPING) or {}),
        DELIMITER: options.get(DELIMITER, ","),
    }


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _TableToExample(  # noqa: N802 (Beam PTransform naming)
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    """Reads the files of one split, one file per element, into tf.train.Examples."""
    options = parse_options(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY))
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    pattern = os.path.join(input_base, split_pattern)
    files = sorted(tf.io.gfile.glob(pattern))
    # Fails before Beam starts, with a clear message, for missing/empty input or a bad header.
    formats.check_files(files, pattern=pattern, **options)
    return (
        pipeline
        | "Files" >> beam.Create(files)
        | "Reshuffle" >> beam.Reshuffle()  # lets a distributed runner read files in parallel
        | "ReadRows" >> beam.FlatMap(formats.read_rows, **options)
        | "ToExample" >> beam.Map(formats.row_to_example, table=options[TABLE])
    )


def _single_split(exec_properties: dict[str, Any]) -> tuple[str, str]:
    """(output split name, input pattern) of the one input split and one output split that
    TableExampleGen builds; a ValueError for any other config."""
    input_config = proto_utils.json_to_proto(
        exec_properties[standard_component_specs.INPUT_CONFIG_KEY], example_gen_pb2.Input()
    )
    output_config = proto_utils.json_to_proto(
        exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], example_gen_pb2.Output()
    )
    names = utils.generate_output_split_names(input_config, output_config)
    if len(input_config.splits) != 1 or len(names) != 1:
        raise ValueError(
            f"TableExampleGen writes one split from one input split; got input splits "
            f"{[s.name for s in input_config.splits]} and output splits {names}"
        )
    return names[0], input_config.splits[0].pattern


class Executor(BaseExampleGenExecutor):
    """ExampleGen executor reading a raw table in one of `formats.FORMATS`.

    It writes its one split as the rows stream in. TFX's own write (write_split.WriteSplit)
    puts a global Reshuffle before the write, and a local Beam runner groups the whole
    shuffle in memory: at 10M events that one stage took the process tree to 8.2 GiB before
    it could write (B6, README). The rows' order needs no shuffle here:
    BehaviorSequenceGen groups them by user and orders each user's events by time, and
    hash_buckets=1 makes TFX's hash partition a no-op, which is skipped too.
    """

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX API)
        """Returns the PTransform that turns a split pattern into tf.train.Examples."""
        return _TableToExample

    def GenerateExamplesByBeam(  # noqa: N802 (TFX API)
        self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]
    ) -> dict[str, beam.pvalue.PCollection]:
        """{split name: its tf.train.Examples}: the one split, unpartitioned."""
        name, pattern = _single_split(exec_properties)
        exec_properties["_beam_pipeline_args"] = self._beam_pipeline_args or []
        return {name: pipeline | "InputToRecord" >> _TableToExample(exec_properties, pattern)}

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        """TFX's ExampleGen Do, with a write that streams (no Reshuffle)."""
        self._log_startup(input_dict, output_dict, exec_properties)
        name, _ = _single_split(exec_properties)
        examples = output_dict[standard_component_specs.EXAMPLES_KEY]
        artifact = artifact_utils.get_single_instance(examples)
        artifact.split_names = artifact_utils.encode_split_names([name])
        with self._make_beam_pipeline() as pipeline:
            (split,) = self.GenerateExamplesByBeam(pipeline, exec_properties).values()
            _ = (
                split
                | "Serialize" >> beam.ParDo(write_split.MaybeSerialize())
                | "Write"
                >> beam.io.WriteToTFRecord(
                    os.path.join(
                        artifact_utils.get_split_uri(examples, name),
                        write_split.DEFAULT_TF_RECORD_FILE_NAME,
                    ),
                    file_name_suffix=".gz",
                )
            )
        # As TFX's Do: downstream readers (TFXIO) pick their decoder from these properties.
        payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        for artifact in examples:
            if payload_format:
                examples_utils.set_payload_format(artifact, payload_format)
            if file_format:
                fmt = write_split.to_file_format_str(file_format)
                examples_utils.set_file_format(artifact, fmt)
