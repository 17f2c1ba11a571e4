"""TableExampleGen: a FileBasedExampleGen that reads one raw table strictly."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import any_pb2, struct_pb2
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2

from components.table_gen import executor, formats

SPLIT = "all"  # the single output split


def TableExampleGen(  # noqa: N802 (a component factory reads like a component class)
    table: str,
    input_base: str,
    pattern: str | None = None,
    fmt: str = formats.CSV,
    column_mapping: Mapping[str, str] | None = None,
    delimiter: str = ",",
    range_config: range_config_pb2.RangeConfig | None = None,
) -> FileBasedExampleGen:
    """Builds the ExampleGen of one raw table, with id `<table>_example_gen`.

    Args:
        table: one of F.TABLES.
        input_base: the directory holding the input files.
        pattern: glob of the files under input_base; may hold `{SPAN}` (e.g.
            "interactions/span-{SPAN}/*.csv"), in which case the latest span is read
            unless range_config names one. Defaults to formats.DEFAULT_FILES[fmt][table].
        fmt: one of formats.FORMATS.
        column_mapping: csv only: {canonical column: column name in the file}.
        delimiter: csv only: the field delimiter.
        range_config: e.g. a static_range to read one given span (start == end).

    Returns:
        A FileBasedExampleGen whose Examples have the single split "all".

    Raises:
        formats.InputError: an unknown table or format, or a bad column mapping.
    """
    formats.validate_options(table, fmt, column_mapping, delimiter)
    options = struct_pb2.Struct()
    options.update(
        {
            executor.TABLE: table,
            executor.FMT: fmt,
            executor.COLUMN_MAPPING: dict(column_mapping or {}),
            executor.DELIMITER: delimiter,
        }
    )
    packed = any_pb2.Any()
    packed.Pack(options)
    pattern = pattern or formats.DEFAULT_FILES[fmt][table]
    return FileBasedExampleGen(
        input_base=input_base,
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name=SPLIT, pattern=pattern)]
        ),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[example_gen_pb2.SplitConfig.Split(name=SPLIT, hash_buckets=1)]
            )
        ),
        custom_config=example_gen_pb2.CustomConfig(custom_config=packed),
        range_config=range_config,
        # BeamExecutorSpec (an ExecutorClassSpec) so that the pipeline's beam_pipeline_args
        # reach this component: TFX adds them only to BeamExecutorSpec components.
        custom_executor_spec=executor_spec.BeamExecutorSpec(executor.Executor),
    ).with_id(f"{table}_example_gen")
