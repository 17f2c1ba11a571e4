"""The baseline record: per model family, the URI of its latest blessed model.

One JSON file (RECORD_FILE) in a `simple_artifacts.File` artifact that only
BaselinePublisher writes:

    {"retrieval": {"model_uri": "...", "source": "blessed"|"carried"},
     "ranking":   {"model_uri": "...", "source": "blessed"|"carried"}}

A family is absent until one of its models is blessed. Each run's publisher
writes the next record from the previous one (carried forward when the new model
is not blessed), so the latest record always names each family's latest blessed
model, and a resolver for the latest record needs no query but the type.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from components.baseline_inputs import RANKING, RETRIEVAL

FAMILIES = (RETRIEVAL, RANKING)
RECORD_FILE = "baselines.json"
BLESSED_FILE = "BLESSED"  # what TFX's Evaluator and RetrievalEvaluator write when blessed


def next_record(previous: Mapping | None, candidates: Mapping[str, tuple[str, bool]]) -> dict:
    """The record after this run.

    Args:
        previous: the latest record before this run, or None (the first run).
        candidates: {family: (this run's model URI, whether it was blessed)}.

    Returns:
        {family: {"model_uri", "source"}}: the new model where blessed, else the
        previous entry ("carried"), else no entry.
    """
    previous = previous or {}
    record = {}
    for family in FAMILIES:
        uri, blessed = candidates.get(family, (None, False))
        if uri and blessed:
            record[family] = {"model_uri": uri, "source": "blessed"}
        elif isinstance(previous.get(family), Mapping) and previous[family].get("model_uri"):
            record[family] = {"model_uri": previous[family]["model_uri"], "source": "carried"}
    return record


def read(uri: str) -> tuple[dict | None, str]:
    """The record in artifact directory `uri` and a status; (None, why) when unreadable."""
    import tensorflow as tf

    path = os.path.join(uri, RECORD_FILE)
    if not tf.io.gfile.exists(path):
        return None, f"no {RECORD_FILE} in {uri}"
    try:
        with tf.io.gfile.GFile(path) as f:
            record = json.load(f)
    except (ValueError, tf.errors.OpError) as e:
        return None, f"{path} is not a JSON record ({e})"
    if not isinstance(record, dict):
        return None, f"{path} holds {type(record).__name__}, not an object"
    return record, "ok"


def write(uri: str, record: Mapping) -> None:
    """Writes the record to `uri`/RECORD_FILE (temporary file, then rename)."""
    import tensorflow as tf

    tf.io.gfile.makedirs(uri)
    path = os.path.join(uri, RECORD_FILE)
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def is_blessed(blessing_uri: str) -> bool:
    """Whether the blessing artifact at `blessing_uri` holds the BLESSED file."""
    import tensorflow as tf

    return tf.io.gfile.exists(os.path.join(blessing_uri, BLESSED_FILE))


def copy_tree(source: str, target: str) -> int:
    """Copies directory `source` into `target` (any tf.io.gfile filesystem); returns files."""
    import tensorflow as tf

    count = 0
    for directory, _, files in tf.io.gfile.walk(source):
        relative = os.path.relpath(directory, source)
        out = target if relative == "." else os.path.join(target, relative)
        tf.io.gfile.makedirs(out)
        for name in files:
            tf.io.gfile.copy(os.path.join(directory, name), os.path.join(out, name), True)
            count += 1
    return count
