"""Transport-independent serving logic: model_spec resolution, input checks, Predict,
GetModelMetadata and GetModelStatus on the official protos. Used by gRPC and REST.
"""

from __future__ import annotations

import contextlib

from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)

from serving import errors, tensors
from serving.batching import Batcher
from serving.budget import RowBudget
from serving.manager import ModelManager
from serving.servable import DEFAULT_SIGNATURE

SIGNATURE_DEF_FIELD = "signature_def"
UNKNOWN_ERROR_CODE = 2  # tensorflow.error.Code.UNKNOWN, for a version that failed to load


class Predictor:
    """Answers requests for a set of models.

    Args:
        managers: model name -> ModelManager.
        limits: per-request limits.
        batcher: merges concurrent requests when given.
        budget: bounds the rows run at once across requests (None: unbounded).
    """

    def __init__(
        self,
        managers: dict,
        limits: tensors.Limits,
        batcher: Batcher | None = None,
        budget: RowBudget | None = None,
    ):
        self.managers = managers
        self.limits = limits
        self.batcher = batcher
        self.budget = budget

    def manager(self, name: str) -> ModelManager:
        """The manager of model `name`; NOT_FOUND when unknown."""
        if name not in self.managers:
            raise errors.not_found(f"Servable not found for request: Latest({errors.clip(name)})")
        return self.managers[name]

    @contextlib.contextmanager
    def signature(self, name: str, version: int | None, label: str, signature_name: str):
        """Yields (servable, Signature) held for the request.

        Raises:
            ServingError: NOT_FOUND (model/version), INVALID_ARGUMENT (label/signature).
        """
        key = signature_name or DEFAULT_SIGNATURE
        with self.manager(name).servable(version, label) as servable:
            if key not in servable.signatures:
                raise errors.invalid(
                    f'Serving signature key "{errors.clip(key)}" not found; '
                    f"available: {sorted(servable.signatures)}"
                )
            yield servable, servable.signatures[key]

    @staticmethod
    def check_input_names(signature, names) -> None:
        """Every signature input present and nothing else; INVALID_ARGUMENT naming them."""
        missing = sorted(set(signature.inputs) - set(names))
        extra = sorted(errors.clip(n) for n in set(names) - set(signature.inputs))[:10]
        if missing or extra:
            raise errors.invalid(
                f"input size does not match signature '{signature.name}': "
                f"missing inputs {missing}, unexpected inputs {extra}"
            )

    @staticmethod
    def check_output_filter(signature, output_filter) -> list:
        """The output keys to answer with (all when the filter is empty)."""
        for key in output_filter:
            if key not in signature.outputs:
                raise errors.invalid(
                    f"output tensor alias not found in signature: {errors.clip(key)}"
                )
        return list(output_filter) or sorted(signature.outputs)

    def run(self, servable, signature, arrays: dict) -> dict:
        """Runs a signature on validated inputs, through the batcher when enabled.

        Args:
            arrays: input key -> np.ndarray [batch, ...].

        Returns:
            output key -> np.ndarray.
        """
        rows = tensors.batch_size(arrays, signature.inputs)
        if self.budget is not None:
            held = (
                rows
                if rows is not None
                else max((a.shape[0] for a in arrays.values() if a.ndim), default=1)
            )
            with self.budget.hold(held):
                return self._run(servable, signature, arrays, rows)
        return self._run(servable, signature, arrays, rows)

    def _run(self, servable, signature, arrays: dict, rows: int | None) -> dict:
        if self.batcher is None or rows is None:
            return servable.run(signature, arrays)
        key = (
            id(servable),
            signature.name,
            tuple((k, a.dtype.str, a.shape[1:]) for k, a in sorted(arrays.items())),
        )
        return self.batcher.run(key, lambda x: servable.run(signature, x), arrays, rows)

    # -- gRPC-shaped API ----------------------------------------------------------
    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """PredictionService.Predict."""
        if not request.HasField("model_spec"):
            raise errors.invalid("Missing ModelSpec")
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        with self.signature(spec.name, version, spec.version_label, spec.signature_name) as (
            servable,
            signature,
        ):
            self.check_input_names(signature, request.inputs.keys())
            keys = self.check_output_filter(signature, request.output_filter)
            arrays = {
                name: tensors.proto_to_array(name, proto, signature.inputs[name], self.limits)
                for name, proto in request.inputs.items()
            }
            outputs = self.run(servable, signature, arrays)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = spec.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature.name
            for key in keys:
                response.outputs[key].CopyFrom(tensors.array_to_proto(outputs[key]))
            return response

    def metadata(self, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """PredictionService.GetModelMetadata: the SignatureDefMap packed in an Any."""
        if not request.HasField("model_spec"):
            raise errors.invalid("Missing ModelSpec")
        if not request.metadata_field:
            raise errors.invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise errors.invalid(f"Metadata field {errors.clip(field)} is not supported")
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        with self.manager(spec.name).servable(version, spec.version_label) as servable:
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = spec.name
            response.model_spec.version.value = servable.version
            packed = any_pb2.Any()
            packed.Pack(servable.signature_defs)
            response.metadata[SIGNATURE_DEF_FIELD].CopyFrom(packed)
            return response

    def status(self, request) -> get_model_status_pb2.GetModelStatusResponse:
        """ModelService.GetModelStatus: every known version's state."""
        if not request.HasField("model_spec"):
            raise errors.invalid("Missing ModelSpec")
        spec = request.model_spec
        if spec.name not in self.managers:
            raise errors.not_found(f"Could not find any versions of model {errors.clip(spec.name)}")
        manager = self.managers[spec.name]
        version = spec.version.value if spec.HasField("version") else None
        if spec.version_label:
            if spec.version_label not in manager.version_labels:
                raise errors.invalid(
                    f"Unrecognized servable version label: {errors.clip(spec.version_label)}"
                )
            version = manager.version_labels[spec.version_label]
        response = get_model_status_pb2.GetModelStatusResponse()
        for number, state, error in manager.statuses(version):
            status = response.model_version_status.add(version=number, state=state)
            status.status.SetInParent()  # error_code OK, as TF Serving reports it
            if error:
                status.status.error_code = UNKNOWN_ERROR_CODE
                status.status.error_message = error
        return response
