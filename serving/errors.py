"""Errors with a gRPC status code, as TF Serving answers them."""

from __future__ import annotations

import grpc
import tensorflow as tf

_GRPC_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# HTTP status of each gRPC code, as TF Serving's REST API maps them.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class ServingError(Exception):
    """A request failure with the gRPC status code to answer it with.

    Attributes:
        code: a `grpc.StatusCode`.
        message: the human-readable message sent to the client.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status the REST API answers this error with."""
        return HTTP_STATUS.get(self.code, 500)


def invalid(message: str) -> ServingError:
    """An INVALID_ARGUMENT error."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """A NOT_FOUND error."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def from_exception(exc: BaseException) -> ServingError:
    """Maps any exception raised while answering a request to a ServingError.

    TensorFlow errors keep their canonical code (as TF Serving forwards the
    session's status); anything else is INTERNAL with the exception's message.
    """
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, tf.errors.OpError):
        code = _GRPC_BY_NUMBER.get(exc.error_code, grpc.StatusCode.INTERNAL)
        return ServingError(code, exc.message)
    return ServingError(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
