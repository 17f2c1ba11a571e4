"""Errors with a gRPC status code, as TF Serving answers them."""

from __future__ import annotations

import os
import re

import grpc
import tensorflow as tf

# The longest message sent to a client: gRPC sends it as trailing metadata, whose default
# limit is 8 KiB; past it the client sees RESOURCE_EXHAUSTED instead of the real code.
MAX_MESSAGE_CHARS = 2000
MAX_ECHO_CHARS = 80  # the longest client-supplied name quoted in a message
# An absolute path in a message: "/a/b..." not preceded by a word character, ".", ":" or "/".
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"():,]+/)+[^\s/'\"():,]*")
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
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 20] + f"... ({len(message)} chars)"
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status the REST API answers this error with."""
        return HTTP_STATUS.get(self.code, 500)


def clip(value) -> str:
    """`repr`-free text of a client-supplied name, cut to MAX_ECHO_CHARS for messages."""
    text = str(value)
    if len(text) <= MAX_ECHO_CHARS:
        return text
    return f"{text[:MAX_ECHO_CHARS]}...({len(text)} chars)"


def redact(message: str, *roots: str) -> str:
    """Hides server paths from a message sent to clients.

    Each of `roots` (e.g. the model base path) becomes its last component; any other
    absolute path becomes ".../<its last component>".
    """
    for root in roots:
        for form in {root, os.path.abspath(root), os.path.realpath(root)}:
            form = form.rstrip("/")
            if form:
                message = message.replace(form, os.path.basename(form) or ".")
    return _ABSOLUTE_PATH.sub(lambda m: ".../" + os.path.basename(m.group(0).rstrip("/")), message)


def invalid(message: str) -> ServingError:
    """An INVALID_ARGUMENT error."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """A NOT_FOUND error."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def from_exception(exc: BaseException) -> ServingError:
    """Maps any exception raised while answering a request to a ServingError.

    TensorFlow errors keep their canonical code (as TF Serving forwards the
    session's status); a RecursionError (deeply nested input) is INVALID_ARGUMENT;
    anything else is INTERNAL with the exception's message. Server paths are redacted.
    """
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, tf.errors.OpError):
        code = _GRPC_BY_NUMBER.get(exc.error_code, grpc.StatusCode.INTERNAL)
        return ServingError(code, redact(exc.message))
    if isinstance(exc, RecursionError):
        return invalid("the request is nested too deeply")
    return ServingError(grpc.StatusCode.INTERNAL, redact(f"{type(exc).__name__}: {exc}"))
