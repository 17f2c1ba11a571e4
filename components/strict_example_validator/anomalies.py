"""Turns TFDV Anomalies into a message a person can act on."""

from __future__ import annotations

from collections.abc import Mapping

from tensorflow_metadata.proto.v0 import anomalies_pb2

HINT = (
    "Fix the input data, or, if the change is intended, update the contract in "
    "schemas/features.py and schemas/schema.pbtxt together."
)


def describe(anomalies_by_split: Mapping[str, anomalies_pb2.Anomalies]) -> list[str]:
    """One line per anomaly: split, feature, short description, details."""
    lines = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            details = "; ".join(r.description for r in info.reason) or info.description
            lines.append(
                f"split '{split}', feature '{feature}': {info.short_description} " f"({details})"
            )
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(
                f"split '{split}', whole dataset: {info.short_description} " f"({info.description})"
            )
    return lines


def error_message(
    anomalies_by_split: Mapping[str, anomalies_pb2.Anomalies], where: str
) -> str | None:
    """The error to raise, or None when there is no anomaly."""
    lines = describe(anomalies_by_split)
    if not lines:
        return None
    body = "\n".join(f"  - {line}" for line in lines)
    return (
        f"ExampleValidator found {len(lines)} anomal{'y' if len(lines) == 1 else 'ies'} "
        f"against the schema; the pipeline stops here.\n{body}\n{HINT}\n"
        f"Full anomalies: {where}"
    )
