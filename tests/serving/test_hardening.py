"""What an outside fuzz and fault test broke (issue 20): REST body limits, timeouts and the
connection cap, error codes, integer range, undecodable protobufs."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest

from schemas import features as F
from tests.serving import toy_model
from tests.serving.conftest import MODEL, predict_request

PREDICT = "/tensorflow.serving.PredictionService/Predict"


def _raw(port: int, head: bytes, body: bytes = b"", timeout: float = 10.0) -> bytes:
    """Sends raw bytes, returns what the server answers before closing (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        try:
            s.sendall(body)
        except OSError:  # the server answered and closed while we were still sending
            pass
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def _post_head(length: str) -> bytes:
    return (
        f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def _rest(port: int, path: str, body=None):
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_rest_rejects_negative_and_non_numeric_content_length(serve):
    running = serve((1,), "--max-message-mb", "1")
    started = time.monotonic()
    # -1 used to read until EOF past the cap; the socket stays open here, so an answer
    # within the timeout means nothing was read past the header.
    answer = _raw(running.rest_port, _post_head("-1"), b"x" * (4 << 20), timeout=10)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    assert time.monotonic() - started < 10
    assert _raw(running.rest_port, _post_head("abc")).startswith(b"HTTP/1.1 400")
    too_big = _raw(running.rest_port, _post_head(str(2 << 20)), b"{}")
    assert too_big.startswith(b"HTTP/1.1 400"), too_big[:100]
    assert _rest(running.rest_port, f"/v1/models/{MODEL}")[0] == 200  # still serving


def test_stalled_sockets_time_out_and_hold_no_threads(serve):
    running = serve((1,), "--rest-idle-timeout-seconds", "1")
    threads = threading.active_count()
    stalled = []
    for _ in range(60):
        s = socket.create_connection(("127.0.0.1", running.rest_port), timeout=15)
        s.sendall(b"POST /v1/models/recommender:predict HTTP/1.1\r\nHost:")  # never finished
        stalled.append(s)
    time.sleep(0.3)
    assert threading.active_count() <= threads + 2  # no thread per connection
    assert _rest(running.rest_port, f"/v1/models/{MODEL}")[0] == 200
    started = time.monotonic()
    for s in stalled:
        assert s.recv(1024) == b""  # closed by the server's header timeout
        s.close()
    assert time.monotonic() - started < 10


def test_connections_beyond_the_cap_get_503(serve):
    running = serve((1,), "--rest-max-connections", "4")
    idle = [socket.create_connection(("127.0.0.1", running.rest_port)) for _ in range(4)]
    time.sleep(0.3)
    try:
        answer = _raw(running.rest_port, b"GET /v1/models/recommender HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503"), answer[:100]
    finally:
        for s in idle:
            s.close()
    time.sleep(0.3)
    assert _rest(running.rest_port, f"/v1/models/{MODEL}")[0] == 200


def test_rest_errors_are_400_not_500(serve):
    running = serve((1,))
    nested = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, body = _rest(running.rest_port, f"/v1/models/{MODEL}:predict", nested)
    assert status == 400, body
    status, body = _rest(running.rest_port, f"/v1/models/{MODEL}/versions/99999999999999999999")
    assert status == 400 and "int64" in body["error"], body
    status, body = _rest(running.rest_port, f"/v1/models/{MODEL}/versions/1")
    assert status == 200, body


def _columns(rows: int = 2) -> dict:
    query = toy_model.query_batch(rows=rows)
    text = lambda v: v.decode() if isinstance(v, bytes) else v
    return {k: [[text(x) for x in r] if isinstance(r, list) else text(r) for r in v.tolist()]
            for k, v in query.items()}  # fmt: skip


@pytest.mark.parametrize("values", [[2**63, 2**63], [2**63, 1], [-(2**63) - 1, 1], [2**70, 1]])
def test_rest_integers_out_of_int64_range_are_invalid(serve, values):
    running = serve((1,))
    columns = _columns()
    columns[F.TIMESTAMP] = values
    status, body = _rest(running.rest_port, f"/v1/models/{MODEL}:predict", {"inputs": columns})
    assert status == 400, body
    assert f"'{F.TIMESTAMP}'" in body["error"] and "out of range" in body["error"], body
    columns[F.TIMESTAMP] = [2**63 - 1, -(2**63)]  # the int64 extremes are valid
    assert _rest(running.rest_port, f"/v1/models/{MODEL}:predict", {"inputs": columns})[0] == 200


def test_huge_names_are_truncated_so_the_real_code_reaches_the_client(serve):
    running = serve((1,))
    huge = "n" * 500_000
    query = toy_model.query_batch()
    cases = [
        (predict_request(query, model=huge), grpc.StatusCode.NOT_FOUND),
        (predict_request(query, signature=huge), grpc.StatusCode.INVALID_ARGUMENT),
        (predict_request({**query, huge: query[F.AGE]}), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for request, code in cases:
        with pytest.raises(grpc.RpcError) as err:
            running.predict_stub.Predict(request, timeout=30)
        assert err.value.code() == code, err.value.details()[:200]
        assert len(err.value.details()) < 4000


def test_undecodable_protobufs_are_invalid_argument_with_one_log_line(serve, caplog):
    running = serve((1,))
    caplog.set_level(logging.INFO)
    raw = running.channel.unary_unary(PREDICT)
    for i in range(50):
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\xff\xff\xff" + bytes([i]), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid PredictRequest" in err.value.details()
    about = [r for r in caplog.records if r.name.startswith(("grpc", "serving.service"))]
    assert len(about) == 1, [r.getMessage() for r in about]
    assert about[0].exc_info is None
