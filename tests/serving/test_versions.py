"""Version discovery as TF Serving does it (ASCII digits, int64, one path per version), load
retries of a half-written version, manifest checks and the release of unloaded versions."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2

from schemas import model_version
from serving import manager as manager_lib
from serving.servable import Servable
from tests.serving import toy_model
from tests.serving.conftest import MODEL, copy_version, outputs_of, predict_request

State = get_model_status_pb2.ModelVersionStatus.State
HUGE = "99999999999999999999"  # > 2^63 - 1


def _status(running) -> dict:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    response = running.model_stub.GetModelStatus(request)
    return {s.version: (s.state, s.status.error_message) for s in response.model_version_status}


def _wait(predicate, timeout=60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _served_version(running) -> int:
    response = running.predict_stub.Predict(predict_request(toy_model.query_batch()), timeout=30)
    return response.model_spec.version.value


def test_scan_matches_tf_serving_version_names(tmp_path, model_template, caplog):
    for name in ("3", "0005", "²", "٣", "+7", "-2", HUGE, str(2**63 - 1), ".tmp-9", "x1"):
        shutil.copytree(os.path.join(model_template, "1"), tmp_path / name)
    found, ignored = manager_lib.scan_versions(str(tmp_path))
    assert found == {3: "3", 5: "0005", 2**63 - 1: str(2**63 - 1)}
    assert sorted(ignored) == sorted(["²", "٣", HUGE])
    shutil.copytree(os.path.join(model_template, "1"), tmp_path / "5")  # "5" beside "0005"
    assert manager_lib.scan_versions(str(tmp_path))[0][5] == "5"  # the canonical name wins


def test_a_version_past_int64_is_ignored_with_one_warning(serve, model_template, caplog):
    running = serve((1,))
    caplog.set_level(logging.WARNING, logger="serving.manager")
    copy_version(model_template, running.base_path, 2, as_version=HUGE)
    time.sleep(1.5)  # ~7 polls
    assert _served_version(running) == 1
    assert _status(running) == {1: (State.AVAILABLE, "")}
    warnings = [r for r in caplog.records if HUGE in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    copy_version(model_template, running.base_path, 2)  # a valid newer version still loads
    assert _wait(lambda: _served_version(running) == 2)


def test_a_non_ascii_digit_directory_breaks_neither_start_nor_polling(serve, model_template):
    running = serve((1, (2, "²")))
    assert _served_version(running) == 1
    copy_version(model_template, running.base_path, 2)
    assert _wait(lambda: _served_version(running) == 2)


def test_a_leading_zero_version_loads_from_its_own_directory(serve, model_template):
    running = serve((1,))
    copy_version(model_template, running.base_path, 2, as_version="0002")
    assert _wait(lambda: _status(running).get(2, (None,))[0] == State.AVAILABLE)
    assert running.server.manager._current.path == os.path.join(running.base_path, "0002")
    assert _served_version(running) == 2


def _slow_copy(src: str, dst: str, pause: float) -> None:
    """A non-atomic copy: saved_model.pb first, then variables/ file by file, slowly."""
    os.makedirs(os.path.join(dst, "variables"))
    for name in os.listdir(src):
        if name not in ("variables", "saved_model.pb"):
            copy = shutil.copytree if os.path.isdir(os.path.join(src, name)) else shutil.copy
            copy(os.path.join(src, name), os.path.join(dst, name))
    shutil.copy(os.path.join(src, "saved_model.pb"), dst)
    time.sleep(pause)  # the server sees saved_model.pb and fails to load the version
    # variables.index first: the load then fails on the missing data shard (with no index at
    # all, TF would load the graph with uninitialised variables).
    for name in sorted(os.listdir(os.path.join(src, "variables")), reverse=True):
        shutil.copy(os.path.join(src, "variables", name), os.path.join(dst, "variables"))
        time.sleep(pause)


def test_a_half_written_version_is_retried_once_complete(serve, model_template, caplog):
    caplog.set_level(logging.ERROR, logger="serving.manager")
    running = serve((1,))  # the default retry interval is 60 s: a changed file retries at once
    target = os.path.join(running.base_path, "2")
    _slow_copy(os.path.join(model_template, "2"), target, pause=1.0)
    assert _wait(lambda: _status(running).get(2, (None,))[0] == State.AVAILABLE, timeout=20)
    assert any("version 2 failed" in r.getMessage() for r in caplog.records)  # half-written
    assert _served_version(running) == 2
    query = toy_model.query_batch()
    want = tf.saved_model.load(os.path.join(model_template, "2")).signatures["serving_default"]
    response = running.predict_stub.Predict(predict_request(query), timeout=30)
    np.testing.assert_allclose(
        outputs_of(response)["retrieval_scores"], want(**query)["retrieval_scores"].numpy()
    )


def test_load_retries_stop_after_max_num_load_retries(tmp_path, model_template):
    calls = []

    def loader(path, version):
        calls.append(version)
        raise RuntimeError("transient failure")

    copy_version(model_template, str(tmp_path), 1)
    manager = manager_lib.ModelManager(
        MODEL, str(tmp_path), 0, loader=loader, max_retries=2, retry_interval=0.05
    )
    for _ in range(20):
        manager.poll()
        time.sleep(0.06)
    assert calls == [1, 1, 1]  # the first try and 2 retries, as --max_num_load_retries=2
    assert manager.statuses()[0][1] == State.END


def test_a_truncated_vocabulary_fails_the_manifest_and_the_old_version_serves(
    serve, model_template
):
    running = serve((1,))
    staged = os.path.join(running.base_path, ".staged-2")
    shutil.copytree(os.path.join(model_template, "2"), staged)
    model_version.write_manifest(staged)
    path = os.path.join(staged, "assets.extra", "items.tsv")
    with open(path) as f:
        lines = f.readlines()
    with open(path, "w") as f:
        f.writelines(lines[: len(lines) // 2])
    os.rename(staged, os.path.join(running.base_path, "2"))
    assert _wait(lambda: _status(running).get(2, (None,))[0] == State.END)
    message = _status(running)[2][1]
    assert "assets.extra/items.tsv" in message and "manifest" in message, message
    assert running.base_path not in message  # no absolute server path
    assert _served_version(running) == 1


def test_an_empty_saved_model_pb_is_a_clear_error(tmp_path, model_template):
    shutil.copytree(os.path.join(model_template, "1"), tmp_path / "1")
    open(tmp_path / "1" / "saved_model.pb", "wb").close()
    with pytest.raises(ValueError, match="saved_model.pb.*no MetaGraphDef"):
        Servable(str(tmp_path / "1"), 1)


def test_unload_destroys_the_versions_tables(tmp_path, model_template):
    servable = Servable(os.path.join(model_template, "1"), 1)
    query = toy_model.query_batch()
    servable.run(servable.signatures["serving_default"], query)
    tables = servable.table_handles()
    assert tables, "the toy model has a StaticHashTable"
    call = servable.signatures["serving_default"].call
    servable.unload()
    with pytest.raises(Exception, match="(?i)resource.*(not found|does not exist)"):
        call(query)  # the table is gone from the resource manager, not just unreferenced


def test_requests_in_flight_finish_before_the_old_version_is_destroyed(serve, model_template):
    running = serve((1,))
    failures, done = [], threading.Event()

    def client():
        stub = running.predict_stub
        while not done.is_set():
            try:
                stub.Predict(predict_request(toy_model.query_batch(rows=4)), timeout=30)
            except grpc.RpcError as exc:
                failures.append(exc.details())

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for version in (2, 3, 4):
        copy_version(model_template, running.base_path, 1 + version % 2, as_version=version)
        assert _wait(lambda v=version: _served_version(running) == v)
    done.set()
    for thread in threads:
        thread.join()
    assert failures == []


def test_an_unloaded_version_is_collected_at_once_not_at_the_next_full_gc(serve, model_template):
    """A loaded SavedModel is a web of reference cycles: the server collects it when it
    unloads it, instead of leaving it to a full collection that under load came only every
    several swaps (the soak's RSS grew ~20 MiB per swap)."""
    import gc

    running = serve((1,))
    gc.collect()
    gc.disable()  # only the server's own collection may free the old version
    try:
        copy_version(model_template, running.base_path, 2)
        assert _wait(lambda: _status(running).get(1, (None,))[0] == State.END)
        leftover = gc.collect()  # unreachable objects nobody collected yet
    finally:
        gc.enable()
    assert leftover < 500, leftover
