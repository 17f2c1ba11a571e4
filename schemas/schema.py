"""The curated schema of the sequence examples, shaped for a history length.

`schemas/schema.pbtxt` states the contract of schemas/features.py for TFDV at the
default history length F.HISTORY_LENGTH. A run with another length L gets the same
schema with the history features' shape [L] and `history_length`'s domain [0, L]
(`sequence_schema`), written once per L by `schema_file`. Transform's raw feature spec,
and from it the exports' history length (models/common/requests.py), follow the schema.
"""

from __future__ import annotations

import hashlib
import os

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from schemas import features as F

SCHEMA_DIR = os.path.dirname(os.path.abspath(__file__))
SCHEMA_PATH = os.path.join(SCHEMA_DIR, "schema.pbtxt")


def load_schema(path: str = SCHEMA_PATH) -> schema_pb2.Schema:
    """Parses a schema.pbtxt into a Schema proto."""
    with open(path) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def sequence_schema(history_length: int = F.HISTORY_LENGTH) -> schema_pb2.Schema:
    """The curated schema with every history feature shaped for `history_length`.

    Raises:
        ValueError: history_length < 1.
    """
    if history_length < 1:
        raise ValueError(f"history_length must be >= 1, got {history_length}")
    schema = load_schema()
    for feature in schema.feature:
        if feature.name in F.FIXED_LENGTH_LISTS:
            del feature.shape.dim[:]
            feature.shape.dim.add(size=history_length)
        elif feature.name == F.HISTORY_LENGTH_FEATURE:
            feature.int_domain.max = history_length
    return schema


def schema_file(history_length: int, directory: str) -> str:
    """A schema.pbtxt for `history_length`: the curated file itself at the default length,
    else `<directory>/schema-history-<L>-<hash>.pbtxt`, written once (atomically).

    Args:
        history_length: L.
        directory: where a derived schema goes (any tf.io.gfile path: local, gs://).
    """
    if history_length == F.HISTORY_LENGTH:
        return SCHEMA_PATH
    import tensorflow as tf

    text = text_format.MessageToString(sequence_schema(history_length))
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    path = os.path.join(directory, f"schema-history-{history_length}-{digest}.pbtxt")
    if not tf.io.gfile.exists(path):
        tf.io.gfile.makedirs(directory)
        tmp = f"{path}.tmp-{os.getpid()}"
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(text)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    return path
