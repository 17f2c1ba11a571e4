"""tf.train.Example <-> canonical row dicts, driven by the dtypes in `schemas`."""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from schemas import features as F


def encode(row: Mapping[str, object], dtypes: Mapping[str, str]) -> tf.train.Example:
    """Encodes a row dict as a tf.train.Example.

    Args:
        row: canonical values (str, int, float or list of str); absent keys
            are written as absent features.
        dtypes: feature name -> F.INT / F.FLOAT / F.STRING / F.STRING_LIST.
    """
    example = tf.train.Example()
    feature = example.features.feature
    for name, value in row.items():
        dtype = dtypes.get(name)
        if value is None or dtype is None:
            continue
        if dtype == F.INT:
            feature[name].int64_list.value.append(int(value))
        elif dtype == F.FLOAT:
            feature[name].float_list.value.append(float(value))
        elif dtype == F.STRING:
            feature[name].bytes_list.value.append(str(value).encode())
        else:
            values = feature[name].bytes_list
            values.SetInParent()  # an empty list is still a (bytes) feature
            values.value.extend([str(v).encode() for v in value])
    return example


def encode_features(row: Mapping[str, object], dtypes: Mapping[str, str]) -> bytes:
    """The serialized `Features` message of `row` (see `join_features`)."""
    return encode(row, dtypes).features.SerializeToString()


def join_features(*parts: bytes) -> bytes:
    """A serialized tf.train.Example whose features are the union of the parts'.

    Each part is a serialized `Features` message (`encode_features`) and the parts name
    disjoint features. A serialized message is a sequence of fields, and `Features` has a
    single one, the repeated map entry `feature` (field 1); so concatenated parts are one
    `Features` holding every entry, wrapped here as the Example's field 1. Examples that
    share features (an event and its sampled negatives share the user and history)
    encode the shared part once: no copy, no re-encoding.
    """
    payload = b"".join(parts)
    return _EXAMPLE_FEATURES_TAG + _varint(len(payload)) + payload


_EXAMPLE_FEATURES_TAG = b"\x0a"  # field 1 (features), wire type 2 (length-delimited)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode(example: tf.train.Example | bytes, dtypes: Mapping[str, str]) -> dict:
    """Decodes a tf.train.Example (or its bytes) into a row dict; inverse of `encode`."""
    if isinstance(example, bytes):
        example = tf.train.Example.FromString(example)
    row = {}
    for name, feature in example.features.feature.items():
        dtype = dtypes.get(name)
        if dtype == F.INT and feature.int64_list.value:
            row[name] = int(feature.int64_list.value[0])
        elif dtype == F.FLOAT and feature.float_list.value:
            row[name] = float(feature.float_list.value[0])
        elif dtype == F.STRING and feature.bytes_list.value:
            row[name] = feature.bytes_list.value[0].decode()
        elif dtype == F.STRING_LIST:
            row[name] = [v.decode() for v in feature.bytes_list.value]
    return row


def table_dtypes(table: str) -> dict[str, str]:
    """The dtypes of a raw table's columns, from the data contract."""
    return {c.name: c.dtype for c in F.TABLES[table]}
