"""Loads the curated schema of the sequence examples (schemas/schema.pbtxt)."""

from __future__ import annotations

import os

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas")
SCHEMA_PATH = os.path.join(SCHEMA_DIR, "schema.pbtxt")


def load_schema(path: str = SCHEMA_PATH) -> schema_pb2.Schema:
    """Parses schema.pbtxt into a Schema proto."""
    with open(path) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())
