"""Server-side batching: merged calls, split results, errors to every waiter."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest

from serving import errors
from serving.batching import Batcher


class Recorder:
    """fn(inputs) = {"y": 10 * x}; records the batch size of each call."""

    def __init__(self, fail=False):
        self.calls, self.fail = [], fail
        self.lock = threading.Lock()

    def __call__(self, inputs):
        with self.lock:
            self.calls.append(len(inputs["x"]))
        if self.fail:
            raise ValueError("model exploded")
        return {"y": inputs["x"] * 10, "n": np.full(len(inputs["x"]), len(inputs["x"]))}


def _concurrent(batcher, fn, sizes, key="k"):
    results, barrier = [None] * len(sizes), threading.Barrier(len(sizes))

    def one(i):
        x = np.arange(sizes[i], dtype=np.int64) + 100 * i  # rows of request i: 100i, 100i+1, ...
        barrier.wait()
        try:
            results[i] = batcher.run(key, fn, {"x": x}, sizes[i])
        except Exception as exc:  # noqa: BLE001
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(sizes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_merges_and_splits():
    batcher = Batcher(max_batch_size=8, batch_timeout_micros=500_000, num_batch_threads=1)
    fn = Recorder()
    results = _concurrent(batcher, fn, [1, 2, 1, 3])  # 7 rows < 8: one call at the timeout
    batcher.stop()
    assert fn.calls == [7]
    for i, size in enumerate([1, 2, 1, 3]):
        assert results[i]["y"].tolist() == [10 * (100 * i + r) for r in range(size)]
        assert results[i]["n"].tolist() == [7] * size


def test_full_batch_runs_before_timeout_and_big_requests_bypass():
    batcher = Batcher(max_batch_size=4, batch_timeout_micros=30_000_000, num_batch_threads=1)
    fn = Recorder()
    results = _concurrent(batcher, fn, [2, 2])  # full at 4 rows: does not wait 30 s
    assert sorted(fn.calls) == [4] and results[1]["y"].tolist() == [1000, 1010]
    assert batcher.run("k", fn, {"x": np.arange(5)}, 5)["y"].tolist() == [0, 10, 20, 30, 40]
    batcher.stop()
    assert fn.calls == [4, 5]


def test_keys_are_not_mixed_and_errors_reach_every_waiter():
    batcher = Batcher(max_batch_size=8, batch_timeout_micros=100_000, num_batch_threads=2)
    good, bad = Recorder(), Recorder(fail=True)
    results = _concurrent(batcher, bad, [1, 1, 1])
    assert all(isinstance(r, ValueError) for r in results)
    a = threading.Thread(target=lambda: _concurrent(batcher, good, [1, 1], key="a"))
    a.start()
    _concurrent(batcher, good, [1], key="b")
    a.join()
    batcher.stop()
    assert sorted(good.calls) == [1, 2]
    with pytest.raises(errors.ServingError) as err:
        batcher.run("k", good, {"x": np.arange(1)}, 1)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
