"""ExampleValidator executor that raises, with a readable message, on any anomaly."""

from __future__ import annotations

import os

from tfx.components.example_validator import executor as base
from tfx.types import artifact_utils

from components.strict_example_validator import anomalies as A


class AnomaliesFoundError(RuntimeError):
    """The validated statistics do not match the schema."""


class Executor(base.Executor):
    """Runs TFX's validation, keeps each split's anomalies, then raises if any."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        self._found = {}
        result = super().Do(input_dict, output_dict, exec_properties)
        message = A.error_message(
            self._found, artifact_utils.get_single_uri(output_dict["anomalies"])
        )
        if message:
            raise AnomaliesFoundError(message)
        return result

    def _Validate(self, inputs, outputs):  # noqa: N802 (TFX API)
        anomalies = super()._Validate(inputs, outputs)
        split_dir = os.path.basename(os.path.normpath(outputs["schema_diff_path"]))
        self._found[split_dir.removeprefix("Split-")] = anomalies
        return anomalies
