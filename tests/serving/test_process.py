"""The server as a process: the ScaNN variant loads (ScaNN ops registered on demand), batching
merges requests, and SIGTERM finishes the requests in flight and exits 0."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from serving import servable as servable_lib
from tests.serving import toy_model
from tests.serving.conftest import MODEL, copy_version, free_port, outputs_of, predict_request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BATCH_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def scann_base(tmp_path_factory) -> str:
    pytest.importorskip("scann")
    base = str(tmp_path_factory.mktemp("scann") / MODEL)
    os.makedirs(base)
    toy_model.export(toy_model.ToyScannRecommender(1), base, 1)
    return base


def test_missing_scann_gives_a_clear_message(scann_base, monkeypatch):
    monkeypatch.setitem(sys.modules, "scann", None)  # `import scann` now raises ImportError
    with pytest.raises(RuntimeError, match=r"ScaNN TF ops \(Scann>\*\).*import scann"):
        servable_lib.Servable(os.path.join(scann_base, "1"), 1)


def _wait_available(channel, process, timeout=180.0) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            if stub.GetModelStatus(request, timeout=5).model_version_status:
                return
        except grpc.RpcError:
            time.sleep(0.5)
    raise AssertionError("server did not become ready")


def _sigterm_during_requests(stub, process, request, count: int):
    """Sends `count` concurrent requests, SIGTERMs the server while they wait in the batcher;
    returns (outputs, errors, seconds until all were answered)."""
    results, errors = [], []

    def call():
        try:
            results.append(outputs_of(stub.Predict(request, timeout=60)))
        except grpc.RpcError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # all are now waiting in the batcher
    process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join()
    return results, errors, time.monotonic() - started


def test_scann_variant_batching_and_sigterm(scann_base):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=REPO, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    timeout = str(int(BATCH_TIMEOUT_S * 1e6))
    argv = [sys.executable, "-m", "serving.server", "--host", "127.0.0.1", "--port", str(port),
            "--model-name", MODEL, "--model-base-path", scann_base, "--batching",
            "--batch-timeout-micros", timeout, "--max-batch-size", "64"]  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    query = toy_model.query_batch(rows=2)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            _wait_available(channel, process)
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            results, errors, elapsed = _sigterm_during_requests(
                stub, process, predict_request(query), 4
            )
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    log = process.stdout.read()
    assert errors == [], errors
    assert len(results) == 4 and elapsed >= BATCH_TIMEOUT_S * 0.9  # answered after the signal
    want = tf.saved_model.load(os.path.join(scann_base, "1")).signatures["serving_default"]
    want = {k: v.numpy() for k, v in want(**query).items()}
    for got in results:
        np.testing.assert_array_equal(got["item_ids"], want["item_ids"])
        np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-6)
    assert "shutting down" in log and "stopped; gRPC requests answered: OK: " in log, log


def test_python_m_serving_stops_with_an_idle_keep_alive_connection(model_template, tmp_path):
    """`python -m serving` runs; SIGTERM exits within the grace period although a REST
    client keeps an idle keep-alive connection open (it used to block shutdown)."""
    base = tmp_path / MODEL
    base.mkdir()
    copy_version(model_template, str(base), 1)
    port, rest_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=REPO, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    argv = [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--port", str(port),
            "--rest-port", str(rest_port), "--model-name", MODEL, "--model-base-path",
            str(base), "--grace-seconds", "5"]  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            _wait_available(channel, process)
        keep_alive = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=30)
        keep_alive.request("GET", f"/v1/models/{MODEL}")
        response = keep_alive.getresponse()
        assert response.status == 200 and not response.will_close
        response.read()  # the connection stays open, idle
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - started < 10
        keep_alive.close()
    finally:
        if process.poll() is None:
            process.kill()
    log = process.stdout.read()
    assert "REST (HTTP): listening" in log and "stopped;" in log, log
