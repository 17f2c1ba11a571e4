"""schemas/schema.pbtxt states the same contract as schemas/features.py."""

from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.schema import load_schema
from schemas import features as F

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
