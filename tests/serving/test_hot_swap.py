"""Version hot swap under concurrent load; half-written and broken versions are ignored."""

from __future__ import annotations

import os
import shutil
import threading
import time

import numpy as np
from tensorflow_serving.apis import get_model_status_pb2

from tests.serving import toy_model
from tests.serving.conftest import MODEL, copy_version, outputs_of, predict_request

State = get_model_status_pb2.ModelVersionStatus.State


def _status(running) -> dict:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    response = running.model_stub.GetModelStatus(request)
    return {s.version: (s.state, s.status.error_message) for s in response.model_version_status}


def _wait(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_hot_swap_under_concurrent_clients(serve, model_template):
    running = serve((1,))
    request = predict_request(toy_model.query_batch(rows=2))
    seen, failures, stop = [], [], threading.Event()

    def client():
        stub = running.predict_stub
        while not stop.is_set():
            try:
                response = stub.Predict(request, timeout=30)
            except Exception as exc:  # noqa: BLE001 - counted, asserted below
                failures.append(exc)
                continue
            out = outputs_of(response)
            offset = out["scores"] - out["retrieval_scores"]  # the toy model adds its version
            version = response.model_spec.version.value
            seen.append((version, bool(np.allclose(offset, version, atol=1e-4))))

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    assert _wait(lambda: len(seen) >= 20)
    # A half-written version 3 (no saved_model.pb yet) must be ignored.
    half = os.path.join(running.base_path, "3")
    shutil.copytree(os.path.join(model_template, "1", "variables"), os.path.join(half, "variables"))
    copy_version(model_template, running.base_path, 2)
    assert _wait(lambda: seen[-1][0] == 2)
    count = len(seen)
    assert _wait(lambda: len(seen) >= count + 50)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert all(consistent for _, consistent in seen)
    versions = [v for v, _ in seen]
    assert versions[0] == 1 and versions[-1] == 2
    assert set(versions) == {1, 2}
    assert _wait(lambda: _status(running).get(1, (None,))[0] == State.END)
    assert _status(running) == {1: (State.END, ""), 2: (State.AVAILABLE, "")}


def test_broken_version_keeps_the_old_one_serving(serve):
    running = serve((1,))
    broken = os.path.join(running.base_path, "7")
    os.makedirs(broken + ".tmp")
    with open(os.path.join(broken + ".tmp", "saved_model.pb"), "wb") as f:
        f.write(b"not a SavedModel")
    os.rename(broken + ".tmp", broken)
    assert _wait(lambda: _status(running).get(7, (None,))[0] == State.END)
    state, error = _status(running)[7]
    assert state == State.END and error
    response = running.predict_stub.Predict(predict_request(toy_model.query_batch()))
    assert response.model_spec.version.value == 1


def test_warmup_requests_are_replayed_before_a_version_serves(serve, model_template):
    running = serve((1,))
    good = predict_request(toy_model.query_batch(), "retrieve")
    staged = os.path.join(running.base_path, ".staged-2")
    shutil.copytree(os.path.join(model_template, "2"), staged)
    toy_model.write_warmup(staged, [good, predict_request(toy_model.query_batch(rows=1))])
    os.rename(staged, os.path.join(running.base_path, "2"))
    assert _wait(lambda: _status(running).get(2, (None,))[0] == State.AVAILABLE)
    assert running.server.manager._current.warmup_count == 2
    # A version whose warm-up fails does not load, as in TF Serving.
    staged = os.path.join(running.base_path, ".staged-3")
    shutil.copytree(os.path.join(model_template, "2"), staged)
    toy_model.write_warmup(staged, [predict_request(toy_model.query_batch(), "nope")])
    os.rename(staged, os.path.join(running.base_path, "3"))
    assert _wait(lambda: _status(running).get(3, (None,))[0] == State.END)
    assert "warm-up request 0 (nope) failed" in _status(running)[3][1]
    response = running.predict_stub.Predict(predict_request(toy_model.query_batch()))
    assert response.model_spec.version.value == 2
