"""gRPC servicers of TF Serving's PredictionService and ModelService (official protos).

Requests are parsed by this module, not by grpc: a body that is not the expected protobuf
becomes INVALID_ARGUMENT with one rate-limited log line (grpc's own deserializer failure
logs a full traceback per request and answers INTERNAL).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    predict_pb2,
    regression_pb2,
)

from serving import errors
from serving.predictor import Predictor

log = logging.getLogger(__name__)
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"


class RateLimitedLog:
    """Logs at most one line per `interval_s`, then how many were suppressed."""

    def __init__(self, interval_s: float = 10.0):
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._next = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args) -> bool:
        """Logs the line unless one was logged within the interval; True if logged."""
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self._suppressed += 1
                return False
            suppressed, self._suppressed, self._next = self._suppressed, 0, now + self.interval_s
        suffix = f" ({suppressed} more since the last such line)" if suppressed else ""
        log.warning(message + suffix, *args)
        return True


@dataclasses.dataclass(frozen=True)
class Undecodable:
    """A request body that did not parse as `expected`."""

    expected: str
    error: str
    size: int


def _parser(message_class):
    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except Exception as exc:  # noqa: BLE001 - DecodeError and friends
            return Undecodable(message_class.__name__, str(exc)[:200], len(data))

    return parse


class RequestStats:
    """Thread-safe count of answered requests per status code name, and the server's
    rate-limited log of undecodable requests."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts = collections.Counter()
        self.undecodable_log = RateLimitedLog()

    def add(self, code_name: str) -> None:
        with self._lock:
            self.counts[code_name] += 1


def answer(stats: RequestStats, context, method, request):
    """Runs `method(request)`; any failure becomes a gRPC status, never a crash."""
    if isinstance(request, Undecodable):
        stats.undecodable_log.warning(
            "undecodable %s of %d bytes from %s: %s",
            request.expected, request.size, context.peer(), request.error,
        )  # fmt: skip
        stats.add(grpc.StatusCode.INVALID_ARGUMENT.name)
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request body is not a valid {request.expected} protobuf",
        )
    try:
        response = method(request)
        stats.add("OK")
        return response
    except Exception as exc:  # noqa: BLE001 - the server answers every request
        error = errors.from_exception(exc)
        if error.code == grpc.StatusCode.INTERNAL:
            log.exception("internal error answering %s", type(request).__name__)
    stats.add(error.code.name)
    context.abort(error.code, error.message)


def _unimplemented(stats: RequestStats, context, what: str):
    stats.add(grpc.StatusCode.UNIMPLEMENTED.name)
    context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{what} is not implemented by this server")


class PredictionService:
    """Predict and GetModelMetadata; Classify, Regress, MultiInference: UNIMPLEMENTED."""

    def __init__(self, predictor: Predictor, stats: RequestStats):
        self.predictor = predictor
        self.stats = stats

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        return answer(self.stats, context, self.predictor.predict, request)

    def GetModelMetadata(self, request, context):  # noqa: N802
        return answer(self.stats, context, self.predictor.metadata, request)

    def Classify(self, request, context):  # noqa: N802
        _unimplemented(self.stats, context, "Classify")

    def Regress(self, request, context):  # noqa: N802
        _unimplemented(self.stats, context, "Regress")

    def MultiInference(self, request, context):  # noqa: N802
        _unimplemented(self.stats, context, "MultiInference")


class ModelService:
    """GetModelStatus; HandleReloadConfigRequest: UNIMPLEMENTED (models come from flags)."""

    def __init__(self, predictor: Predictor, stats: RequestStats):
        self.predictor = predictor
        self.stats = stats

    def GetModelStatus(self, request, context):  # noqa: N802
        return answer(self.stats, context, self.predictor.status, request)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        _unimplemented(self.stats, context, "HandleReloadConfigRequest")


def _handler(method, request_class, response_class):
    return grpc.unary_unary_rpc_method_handler(
        method,
        request_deserializer=_parser(request_class),
        response_serializer=response_class.SerializeToString,
    )


def add_services(server: grpc.Server, predictor: Predictor, stats: RequestStats) -> None:
    """Registers both services on a grpc server (method names as TF Serving's protos)."""
    prediction = PredictionService(predictor, stats)
    model = ModelService(predictor, stats)
    prediction_methods = {
        "Predict": (predict_pb2.PredictRequest, predict_pb2.PredictResponse),
        "GetModelMetadata": (
            get_model_metadata_pb2.GetModelMetadataRequest,
            get_model_metadata_pb2.GetModelMetadataResponse,
        ),
        "Classify": (
            classification_pb2.ClassificationRequest,
            classification_pb2.ClassificationResponse,
        ),
        "Regress": (regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
        "MultiInference": (
            inference_pb2.MultiInferenceRequest,
            inference_pb2.MultiInferenceResponse,
        ),
    }
    model_methods = {
        "GetModelStatus": (
            get_model_status_pb2.GetModelStatusRequest,
            get_model_status_pb2.GetModelStatusResponse,
        ),
        "HandleReloadConfigRequest": (
            model_management_pb2.ReloadConfigRequest,
            model_management_pb2.ReloadConfigResponse,
        ),
    }
    for service_name, servicer, methods in (
        (PREDICTION_SERVICE, prediction, prediction_methods),
        (MODEL_SERVICE, model, model_methods),
    ):
        handlers = {
            name: _handler(getattr(servicer, name), request, response)
            for name, (request, response) in methods.items()
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service_name, handlers),)
        )
