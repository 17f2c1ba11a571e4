"""schemas/schema.pbtxt states the same contract as schemas/features.py, at any history
length."""

import os

import pytest
from tensorflow_metadata.proto.v0 import schema_pb2

from schemas import features as F
from schemas.schema import SCHEMA_PATH, load_schema, schema_file, sequence_schema

TYPES = {
    F.INT: schema_pb2.INT,
    F.FLOAT: schema_pb2.FLOAT,
    F.STRING: schema_pb2.BYTES,
    F.STRING_LIST: schema_pb2.BYTES,
}


def test_schema_matches_feature_contract():
    schema = load_schema()
    by_name = {f.name: f for f in schema.feature}
    assert set(by_name) == set(F.SEQUENCE_FEATURES)
    for name, dtype in F.SEQUENCE_FEATURES.items():
        feature = by_name[name]
        assert feature.type == TYPES[dtype], name
        if name in F.FIXED_LENGTH_LISTS:
            assert [d.size for d in feature.shape.dim] == [F.HISTORY_LENGTH], name
        elif dtype == F.STRING_LIST:
            assert not feature.HasField("shape"), name  # variable length
        else:
            assert [d.size for d in feature.shape.dim] == [1], name
    assert by_name[F.LABEL].not_in_environment == ["SERVING"]
    assert by_name[F.HISTORY_LENGTH_FEATURE].int_domain.max == F.HISTORY_LENGTH


def test_sequence_schema_shapes_every_history_feature_for_the_length():
    by_name = {f.name: f for f in sequence_schema(30).feature}
    for name in F.FIXED_LENGTH_LISTS:
        assert [d.size for d in by_name[name].shape.dim] == [30], name
    assert by_name[F.HISTORY_LENGTH_FEATURE].int_domain.max == 30
    # Everything else is the curated file's.
    curated = {f.name: f for f in load_schema().feature}
    for name in set(curated) - set(F.FIXED_LENGTH_LISTS) - {F.HISTORY_LENGTH_FEATURE}:
        assert by_name[name] == curated[name], name
    with pytest.raises(ValueError, match="history_length"):
        sequence_schema(0)


def test_schema_file_is_the_curated_file_at_the_default_length(tmp_path):
    assert schema_file(F.HISTORY_LENGTH, str(tmp_path)) == SCHEMA_PATH
    assert list(tmp_path.iterdir()) == []


def test_schema_file_for_another_length_is_written_once_and_parses(tmp_path):
    path = schema_file(30, str(tmp_path / "schema"))
    assert path.startswith(str(tmp_path)) and "history-30" in path
    assert load_schema(path) == sequence_schema(30)
    mtime = os.path.getmtime(path)
    assert schema_file(30, str(tmp_path / "schema")) == path
    assert os.path.getmtime(path) == mtime and len(os.listdir(tmp_path / "schema")) == 1
