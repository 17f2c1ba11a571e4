"""Baseline inputs of the consumers (trainers, evaluators, miner): usable, or "no baseline".

A baseline is a model of one family ("retrieval" or "ranking") that BaselineLoader
(components/baselines) copied from the latest blessed model of that family. A
consumer must never crash on a baseline that is missing, empty (the first run, or
nothing blessed yet) or of the wrong kind (another family's model): it runs as
without a baseline and says why. The kind is read from the SavedModel's signature
names (saved_model.pb is parsed as a proto, no graph is loaded):
- retrieval (two-tower): `query_embedding` and `candidate_embedding`,
- ranking (DIN): `score_candidates`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from absl import logging

RETRIEVAL, RANKING = "retrieval", "ranking"
FAMILY_SIGNATURES = {
    RETRIEVAL: ("query_embedding", "candidate_embedding"),
    RANKING: ("score_candidates",),
}
SERVING_DIR, SAVED_MODEL = "Format-Serving", "saved_model.pb"
STATUS_PROPERTY = "baseline"  # custom property: "<family> baseline: <uri>" or "no baseline: ..."


def signature_names(model_uri: str) -> set[str] | None:
    """The signature names of `<model_uri>/Format-Serving`, or None without a SavedModel."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(model_uri, SERVING_DIR, SAVED_MODEL)
    if not tf.io.gfile.exists(path):
        return None
    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        saved.ParseFromString(f.read())
    return {name for graph in saved.meta_graphs for name in graph.signature_def}


def family_of(model_uri: str) -> str | None:
    """ "retrieval", "ranking" or None (no SavedModel, or signatures of neither family)."""
    names = signature_names(model_uri)
    if names is None:
        return None
    for family, needed in FAMILY_SIGNATURES.items():
        if set(needed) <= names:
            return family
    return None


def check(artifacts, family: str) -> tuple[list, str]:
    """The usable baseline artifacts of `family` ([] or [one]) and a one-line status.

    Args:
        artifacts: the input's artifacts (a list, possibly empty, or None).
        family: the family the consumer expects.

    Returns:
        (artifacts to use, status): status is "<family> baseline: <uri>" or
        "no baseline: <why>" (none resolved, no model in it, or another kind).
    """
    artifacts = list(artifacts or [])
    if not artifacts:
        return [], f"no baseline: no {family} model resolved (first run)"
    if len(artifacts) > 1:
        return [], f"no baseline: {len(artifacts)} artifacts resolved, expected one"
    uri = artifacts[0].uri
    found = family_of(uri)
    if found is None:
        return [], f"no baseline: no {family} SavedModel at {uri} (nothing blessed yet)"
    if found != family:
        return [], f"no baseline: {uri} is a {found} model, not a {family} model"
    return artifacts, f"{family} baseline: {uri}"


def filter_inputs(input_dict: Mapping, families: Mapping[str, str], who: str) -> tuple[dict, dict]:
    """A copy of `input_dict` with each baseline key kept only when usable.

    Args:
        input_dict: the executor's inputs.
        families: {input key: the family it must hold}.
        who: the component, for the log line.

    Returns:
        (the filtered inputs, {input key: status}).
    """
    result, statuses = dict(input_dict), {}
    for key, family in families.items():
        kept, status = check(input_dict.get(key), family)
        result[key] = kept
        statuses[key] = status
        logging.info("%s: %s = %s", who, key, status)
        print(f"{who}: {key}: {status}")
    return result, statuses


def record_statuses(output_dict: Mapping, statuses: Mapping[str, str]) -> None:
    """Writes the statuses as the custom property STATUS_PROPERTY of every output artifact."""
    text = "; ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
    for artifacts in output_dict.values():
        for artifact in artifacts:
            artifact.set_string_custom_property(STATUS_PROPERTY, text)


class BaselineInputsMixin:
    """Before an executor's Do: drops unusable baselines (BASELINE_FAMILIES: key -> family).

    The statuses are logged, printed and set on every output artifact (STATUS_PROPERTY),
    where the pipeline summary reads them.
    """

    BASELINE_FAMILIES: Mapping[str, str] = {}

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        inputs, statuses = filter_inputs(input_dict, self.BASELINE_FAMILIES, type(self).__name__)
        result = super().Do(inputs, output_dict, exec_properties)
        record_statuses(output_dict, statuses)
        return result
