"""Executor of TableExampleGen: reads one raw table with the strict readers of `formats`."""

from __future__ import annotations

import os
from typing import Any

import apache_beam as beam
import tensorflow as tf
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

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


class Executor(BaseExampleGenExecutor):
    """ExampleGen executor reading a raw table in one of `formats.FORMATS`."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX API)
        """Returns the PTransform that turns a split pattern into tf.train.Examples."""
        return _TableToExample
