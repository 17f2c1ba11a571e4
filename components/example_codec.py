"""tf.train.Example <-> canonical row dicts, driven by the dtypes in `schemas`."""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from schemas import features as F


def encode(
    row: Mapping[str, object], dtypes: Mapping[str, str], base: tf.train.Example | None = None
) -> tf.train.Example:
    """Encodes a row dict as a tf.train.Example.

    Args:
        row: canonical values (str, int, float or list of str); absent keys
            are written as absent features.
        dtypes: feature name -> F.INT / F.FLOAT / F.STRING / F.STRING_LIST.
        base: an example to start from (copied): encoding the features many
            examples share once and adding the rest is much cheaper.
    """
    example = tf.train.Example()
    if base is not None:
        example.CopyFrom(base)
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
