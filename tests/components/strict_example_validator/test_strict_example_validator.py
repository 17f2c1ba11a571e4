"""StrictExampleValidator: real StatisticsGen + validator executors on good and bad data."""

import os
import shutil

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.components.statistics_gen import executor as stats_executor
from tfx.types import artifact_utils, standard_artifacts

from components.strict_example_validator import anomalies as A
from components.strict_example_validator import executor as validator
from models.common import example_codec
from schemas import features as F
from schemas.schema import SCHEMA_PATH

L = F.HISTORY_LENGTH


def good_row(**overrides):
    row = {
        F.USER_ID: "u1",
        F.ITEM_ID: "A",
        F.TIMESTAMP: 5,
        F.LABEL: 1,
        F.EVENT: 1,
        F.AGE: 30,
        F.GENDER: "F",
        F.OCCUPATION: "artist",
        F.GENRES: ["Drama"],
        F.PRIMARY_GENRE: "Drama",
        F.YEAR: 1990,
        F.HISTORY_ITEM_IDS: ["B"] + [""] * (L - 1),
        F.HISTORY_GENRES: ["Drama"] + [""] * (L - 1),
        F.HISTORY_LENGTH_FEATURE: 1,
        F.HISTORY_BUCKET: "1-4",
    }
    row.update(overrides)
    return row


def artifact(cls, uri, splits=None):
    a = cls()
    a.uri = uri
    if splits:
        a.split_names = artifact_utils.encode_split_names(splits)
    return a


def validate(tmp_path, rows):
    examples = artifact(standard_artifacts.Examples, str(tmp_path / "examples"), ["train"])
    os.makedirs(os.path.join(examples.uri, "Split-train"))
    path = os.path.join(examples.uri, "Split-train", "data.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as w:
        for row in rows:
            w.write(example_codec.encode(row, F.SEQUENCE_FEATURES).SerializeToString())
    stats = artifact(standard_artifacts.ExampleStatistics, str(tmp_path / "stats"))
    stats_executor.Executor().Do({"examples": [examples]}, {"statistics": [stats]}, {})
    schema = artifact(standard_artifacts.Schema, str(tmp_path / "schema"))
    os.makedirs(schema.uri)
    shutil.copy(SCHEMA_PATH, schema.uri)
    anomalies = artifact(standard_artifacts.ExampleAnomalies, str(tmp_path / "anomalies"))
    validator.Executor().Do(
        {"statistics": [stats], "schema": [schema]}, {"anomalies": [anomalies]}, {}
    )


def test_valid_examples_pass(tmp_path):
    validate(tmp_path, [good_row(), good_row(user_id="u2", label=0)])


def test_anomalies_stop_with_a_readable_message(tmp_path):
    rows = [good_row(label=3), {k: v for k, v in good_row().items() if k != F.AGE}]
    with pytest.raises(validator.AnomaliesFoundError) as err:
        validate(tmp_path, rows)
    message = str(err.value)
    assert "split 'train', feature 'label'" in message
    assert "split 'train', feature 'age'" in message
    assert "schemas/schema.pbtxt" in message and str(tmp_path / "anomalies") in message


def test_error_message_lists_every_anomaly():
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["year"]
    info.short_description = "Unexpected data type"
    info.reason.add(description="Expected INT, got BYTES")
    assert A.error_message({"eval": anomalies}, "/a") == (
        "ExampleValidator found 1 anomaly against the schema; the pipeline stops here.\n"
        "  - split 'eval', feature 'year': Unexpected data type (Expected INT, got BYTES)\n"
        f"{A.HINT}\nFull anomalies: /a"
    )
    assert A.error_message({"eval": anomalies_pb2.Anomalies()}, "/a") is None
