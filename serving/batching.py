"""Server-side batching: concurrent requests with the same servable, signature, dtypes and
non-batch dimensions are merged into one call along dimension 0, and the outputs are split
back ([rows_i, ...] each). Semantics follow TF Serving's BatchingParameters: a batch runs
when it holds `max_batch_size` rows or its oldest request waited `batch_timeout_micros`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict

import grpc
import numpy as np

from serving import errors


@dataclasses.dataclass
class _Task:
    inputs: dict
    rows: int
    enqueued: float
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    outputs: dict | None = None
    error: BaseException | None = None


class Batcher:
    """Merges concurrent calls.

    Args:
        max_batch_size: most rows in one merged call.
        batch_timeout_micros: longest wait of the oldest request for peers.
        num_batch_threads: threads running merged calls.
        max_enqueued_batches: queue capacity, in batches (beyond: UNAVAILABLE).
    """

    def __init__(
        self,
        max_batch_size=32,
        batch_timeout_micros=1000,
        num_batch_threads=2,
        max_enqueued_batches=64,
    ):
        self.max_batch_size = max_batch_size
        self.timeout = batch_timeout_micros / 1e6
        self.max_rows_enqueued = max_enqueued_batches * max_batch_size
        self._queues: OrderedDict = OrderedDict()  # key -> (fn, [tasks])
        self._enqueued_rows = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
            for i in range(num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, key, fn, inputs: dict, rows: int) -> dict:
        """Runs fn(inputs) merged with concurrent calls of the same key; blocks.

        Args:
            key: hashable; calls are merged only within one key.
            fn: inputs dict -> outputs dict, every output batch-major.
            inputs: name -> np.ndarray [rows, ...].
            rows: dimension 0 of every input.

        Returns:
            name -> np.ndarray [rows, ...], this call's rows only.
        """
        if rows == 0 or rows >= self.max_batch_size:
            return fn(inputs)
        task = _Task(inputs, rows, time.monotonic())
        with self._cond:
            if self._stopping:
                raise errors.ServingError(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
            if self._enqueued_rows + rows > self.max_rows_enqueued:
                raise errors.ServingError(
                    grpc.StatusCode.UNAVAILABLE, "The batch scheduling queue is full"
                )
            self._queues.setdefault(key, (fn, []))[1].append(task)
            self._enqueued_rows += rows
            self._cond.notify_all()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def stop(self) -> None:
        """Runs what is queued, then stops the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def _next_batch(self):
        """Under the lock: waits for a batch that is full or timed out; None to exit."""
        while True:
            if not self._queues:
                if self._stopping:
                    return None
                self._cond.wait()
                continue
            key, (fn, tasks) = min(self._queues.items(), key=lambda kv: kv[1][1][0].enqueued)
            rows = sum(t.rows for t in tasks)
            wait = tasks[0].enqueued + self.timeout - time.monotonic()
            if rows >= self.max_batch_size or wait <= 0 or self._stopping:
                taken, total = [], 0
                while tasks and total + tasks[0].rows <= self.max_batch_size:
                    total += tasks[0].rows
                    taken.append(tasks.pop(0))
                if not tasks:
                    del self._queues[key]
                self._enqueued_rows -= total
                return fn, taken
            self._cond.wait(wait)

    def _work(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
            if batch is None:
                return
            self._execute(*batch)

    @staticmethod
    def _execute(fn, tasks: list) -> None:
        try:
            if len(tasks) == 1:
                tasks[0].outputs = fn(tasks[0].inputs)
            else:
                merged = {
                    name: np.concatenate([t.inputs[name] for t in tasks])
                    for name in tasks[0].inputs
                }
                outputs = fn(merged)
                total = sum(t.rows for t in tasks)
                bad = [k for k, v in outputs.items() if v.ndim == 0 or v.shape[0] != total]
                if bad:
                    raise errors.ServingError(
                        grpc.StatusCode.INTERNAL,
                        f"batching: output '{bad[0]}' is not batch-major, cannot split it",
                    )
                cuts = np.cumsum([t.rows for t in tasks])[:-1]
                parts = {k: np.split(v, cuts) for k, v in outputs.items()}
                for i, task in enumerate(tasks):
                    task.outputs = {k: p[i] for k, p in parts.items()}
        except BaseException as exc:  # noqa: BLE001 - every waiter gets the error
            for task in tasks:
                task.error = exc
        finally:
            for task in tasks:
                task.done.set()
