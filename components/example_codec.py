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
    feats = {}
    for name, dtype in dtypes.items():
        if name not in row or row[name] is None:
            continue
        value = row[name]
        if dtype == F.INT:
            feats[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        elif dtype == F.FLOAT:
            feats[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        elif dtype == F.STRING:
            feats[name] = tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[str(value).encode()])
            )
        else:
            encoded = [str(v).encode() for v in value]
            feats[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=encoded))
    return tf.train.Example(features=tf.train.Features(feature=feats))


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
