"""gRPC servicers of TF Serving's PredictionService and ModelService (official stubs)."""

from __future__ import annotations

import collections
import logging
import threading

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from serving import errors
from serving.predictor import Predictor

log = logging.getLogger(__name__)


class RequestStats:
    """Thread-safe count of answered requests per status code name."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts = collections.Counter()

    def add(self, code_name: str) -> None:
        with self._lock:
            self.counts[code_name] += 1


def answer(stats: RequestStats, context, method, request):
    """Runs `method(request)`; any failure becomes a gRPC status, never a crash."""
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


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
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


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest: UNIMPLEMENTED (models come from flags)."""

    def __init__(self, predictor: Predictor, stats: RequestStats):
        self.predictor = predictor
        self.stats = stats

    def GetModelStatus(self, request, context):  # noqa: N802
        return answer(self.stats, context, self.predictor.status, request)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        _unimplemented(self.stats, context, "HandleReloadConfigRequest")


def add_services(server: grpc.Server, predictor: Predictor, stats: RequestStats) -> None:
    """Registers both services on a grpc server."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(predictor, stats), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelService(predictor, stats), server
    )
