"""Runs TableExampleGen in a one-component pipeline with TFX's LocalDagRunner.

The TFX classes are imported from their modules rather than `tfx.v1` (the same objects:
tfx.v1.orchestration.LocalDagRunner is LocalDagRunner), which spares ~15 s of imports.
"""

from __future__ import annotations

import glob
import json
import os

import pytest
import tensorflow as tf
from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata, pipeline
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.utils import proto_utils

from components.table_gen import component, executor, formats
from schemas import features as F

_HEADER = ",".join([F.USER_ID, F.ITEM_ID, F.RATING, F.TIMESTAMP])
_SPANS = {
    0: {"part-0.csv": [("u0", "i0", "1", "10")]},
    1: {
        "part-0.csv": [("u1", "i1", "4.5", "11"), ("u2", "i2", "", "12")],
        "part-1.csv": [("u3", "i1", "2", "13")],
    },
}
_PATTERN = f"{F.INTERACTIONS}/span-{{SPAN}}/*.csv"


def _write_spans(input_base, spans=_SPANS) -> None:
    for span, files in spans.items():
        folder = input_base / F.INTERACTIONS / f"span-{span}"
        folder.mkdir(parents=True)
        for name, rows in files.items():
            lines = [_HEADER] + [",".join(row) for row in rows]
            (folder / name).write_text("\n".join(lines) + "\n")


def _expected(span: int) -> list[dict]:
    rows = []
    for name in sorted(_SPANS[span]):
        for user, item, rating, ts in _SPANS[span][name]:
            row = {F.USER_ID: user, F.ITEM_ID: item, F.TIMESTAMP: int(ts)}
            if rating:
                row[F.RATING] = float(rating)
            rows.append(row)
    return sorted(rows, key=lambda r: r[F.TIMESTAMP])


def _decode(record: bytes) -> dict:
    feature = tf.train.Example.FromString(record).features.feature
    dtypes = {c.name: c.dtype for c in F.TABLES[F.INTERACTIONS]}
    row = {}
    for name, value in feature.items():
        if dtypes[name] == F.INT:
            row[name] = value.int64_list.value[0]
        elif dtypes[name] == F.FLOAT:
            row[name] = value.float_list.value[0]
        else:
            row[name] = value.bytes_list.value[0].decode()
    return row


def _run(tmp_path, gen) -> metadata_store.MetadataStore:
    """Runs `gen` alone in a pipeline; returns its MLMD store."""
    config = metadata.sqlite_metadata_connection_config(str(tmp_path / "mlmd.sqlite"))
    one = pipeline.Pipeline(
        pipeline_name="table_gen_test",
        pipeline_root=str(tmp_path / "root"),
        components=[gen],
        metadata_connection_config=config,
        enable_cache=False,
    )
    LocalDagRunner().run(one)
    return metadata_store.MetadataStore(config)


def _read_examples(store) -> tuple[object, list[dict]]:
    (artifact,) = store.get_artifacts_by_type("Examples")
    records = []
    for path in sorted(glob.glob(os.path.join(artifact.uri, f"Split-{component.SPLIT}", "*"))):
        records += [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]
    rows = sorted((_decode(r) for r in records), key=lambda r: r[F.TIMESTAMP])
    return artifact, rows


def test_latest_span(tmp_path):
    _write_spans(tmp_path / "in")
    gen = component.TableExampleGen(F.INTERACTIONS, str(tmp_path / "in"), pattern=_PATTERN)
    assert gen.id == f"{F.INTERACTIONS}_example_gen"
    artifact, rows = _read_examples(_run(tmp_path, gen))
    assert artifact.properties["split_names"].string_value == json.dumps([component.SPLIT])
    assert artifact.custom_properties["span"].int_value == 1
    # What TFX's own Do records, and what TFXIO reads to pick a decoder downstream.
    assert artifact.custom_properties["payload_format"].string_value == "FORMAT_TF_EXAMPLE"
    assert artifact.custom_properties["file_format"].string_value == "tfrecords_gzip"
    assert rows == _expected(1)


def test_static_range_config_selects_a_span(tmp_path):
    _write_spans(tmp_path / "in")
    span_0 = range_config_pb2.RangeConfig(
        static_range=range_config_pb2.StaticRange(start_span_number=0, end_span_number=0)
    )
    gen = component.TableExampleGen(
        F.INTERACTIONS, str(tmp_path / "in"), pattern=_PATTERN, range_config=span_0
    )
    artifact, rows = _read_examples(_run(tmp_path, gen))
    assert artifact.custom_properties["span"].int_value == 0
    assert rows == _expected(0)


def test_bad_row_fails_the_run_with_the_input_error(tmp_path):
    _write_spans(tmp_path / "in")
    bad = tmp_path / "in" / F.INTERACTIONS / "span-1" / "part-1.csv"
    bad.write_text(f"{_HEADER}\nu3,i1,2,13\nu4,i2,lots,14\n")
    gen = component.TableExampleGen(F.INTERACTIONS, str(tmp_path / "in"), pattern=_PATTERN)
    # Raised inside Beam; the DirectRunner re-raises the same type, suffixing the step name.
    with pytest.raises(formats.InputError) as info:
        _run(tmp_path, gen)
    assert f"{bad}: line 3: field '{F.RATING}': expected a number, found 'lots'" in str(info.value)


def test_bad_header_fails_before_beam(tmp_path):
    _write_spans(tmp_path / "in")
    bad = tmp_path / "in" / F.INTERACTIONS / "span-1" / "part-1.csv"
    bad.write_text(f"user,{F.ITEM_ID},{F.TIMESTAMP}\nu3,i1,13\n")
    gen = component.TableExampleGen(F.INTERACTIONS, str(tmp_path / "in"), pattern=_PATTERN)
    with pytest.raises(formats.InputError, match=f"{bad}: line 1: missing required column"):
        _run(tmp_path, gen)


def _input_pattern(gen) -> str:
    config = proto_utils.json_to_proto(gen.exec_properties["input_config"], example_gen_pb2.Input())
    (split,) = config.splits
    assert split.name == component.SPLIT
    return split.pattern


def test_config_reaches_the_executor_as_json(tmp_path):
    mapping = {F.USER_ID: "uid"}
    gen = component.TableExampleGen(
        F.USERS, str(tmp_path), fmt=formats.CSV, column_mapping=mapping, delimiter=";"
    )
    assert _input_pattern(gen) == formats.DEFAULT_FILES[formats.CSV][F.USERS]
    custom_config = gen.exec_properties["custom_config"]  # already the JSON string
    assert isinstance(custom_config, str)
    expected = {
        executor.TABLE: F.USERS,
        executor.FMT: formats.CSV,
        executor.COLUMN_MAPPING: mapping,
        executor.DELIMITER: ";",
    }
    assert executor.parse_options(custom_config) == expected
    proto = proto_utils.json_to_proto(custom_config, example_gen_pb2.CustomConfig())
    assert executor.parse_options(proto) == expected
    with pytest.raises(ValueError, match="needs a custom_config"):
        executor.parse_options(None)
    ml = component.TableExampleGen(F.ITEMS, str(tmp_path), fmt=formats.ML_100K)
    assert ml.id == f"{F.ITEMS}_example_gen"
    assert _input_pattern(ml) == "u.item"
    with pytest.raises(formats.InputError, match="unknown input format"):
        component.TableExampleGen(F.ITEMS, str(tmp_path), fmt="tsv")


class _Recording(executor.Executor):
    """The executor, keeping the Beam pipeline its Do builds and runs."""

    def _make_beam_pipeline(self):
        self.pipeline = super()._make_beam_pipeline()
        return self.pipeline


def _groupings(beam_pipeline) -> dict[str, list[str]]:
    """{full label of each GroupByKey: the labels of the transforms producing its input}."""
    import apache_beam as beam

    found = {}

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            if isinstance(node.transform, beam.GroupByKey):
                found[node.full_label] = [i.producer.full_label for i in node.inputs]

    beam_pipeline.visit(Visitor())
    return found


def test_the_examples_stream_to_the_files_without_a_global_shuffle(tmp_path):
    """TFX's WriteSplit reshuffles every example before writing, which a local runner
    holds in memory (8.2 GiB at 10M events). Here the only groupings are of file names:
    the input files (so a distributed runner reads them in parallel) and the sink's
    written temp files."""
    from tfx.types import standard_artifacts

    _write_spans(tmp_path / "in")
    gen = component.TableExampleGen(
        F.INTERACTIONS, str(tmp_path / "in"), pattern=f"{F.INTERACTIONS}/span-1/*.csv"
    )
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    run = _Recording()
    run.Do({}, {"examples": [examples]}, dict(gen.exec_properties))

    groupings = _groupings(run.pipeline)
    assert groupings, "the graph has no GroupByKey at all: the visitor sees nothing"
    # Of file names: beam.Create's and the executor's reshuffles before ReadRows, and the
    # sink's grouping of the temp files its bundles wrote.
    of_file_names = ("InputToRecord/Files/", "InputToRecord/Reshuffle/", "Write/Write/WriteImpl/")
    for label, producers in groupings.items():
        assert label.startswith(of_file_names), (label, producers)
        assert "Serialize" not in producers, (label, producers)
    # The rows reached the files, and the split is named for downstream readers.
    assert json.loads(examples.split_names) == [component.SPLIT]
    paths = glob.glob(str(tmp_path / "out" / f"Split-{component.SPLIT}" / "*.gz"))
    records = [r.numpy() for p in paths for r in tf.data.TFRecordDataset(p, "GZIP")]
    assert sorted((_decode(r) for r in records), key=lambda r: r[F.TIMESTAMP]) == _expected(1)


def test_the_executor_refuses_more_than_one_split(tmp_path):
    gen = component.TableExampleGen(F.INTERACTIONS, str(tmp_path))
    props = dict(gen.exec_properties)
    props["output_config"] = proto_utils.proto_to_json(
        example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
                    example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
                ]
            )
        )
    )
    with pytest.raises(ValueError, match=r"one split.*\['train', 'eval'\]"):
        executor.Executor().Do({}, {"examples": []}, props)
