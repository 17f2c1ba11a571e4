"""A memory budget for requests: the rows in flight across all requests are bounded.

A request's peak memory grows with its batch (the ranker's activations are
[batch, candidates, ...]), so the gRPC and REST thread counts alone do not bound the
server's memory: 32 threads each running a batch of 1024 did (3.85 GB in a fuzz). With a
budget of R rows, the model runs at most R rows at once; a request waits for its rows
(a batch larger than R waits until it can run alone), and one that waits longer than
`timeout_s` fails with RESOURCE_EXHAUSTED, as TF Serving's full batching queue does.
"""

from __future__ import annotations

import contextlib
import threading

import grpc

from serving import errors


class RowBudget:
    """Counts rows in flight against a capacity.

    Args:
        capacity: most rows run at once (> 0).
        timeout_s: longest wait for rows.
    """

    def __init__(self, capacity: int, timeout_s: float = 30.0):
        if capacity < 1:
            raise ValueError(f"the row budget must be >= 1, got {capacity}")
        self.capacity = capacity
        self.timeout_s = timeout_s
        self.in_flight = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, rows: int):
        """Holds min(rows, capacity) rows for the duration of the block.

        Raises:
            ServingError: RESOURCE_EXHAUSTED when the rows are not free within timeout_s.
        """
        need = max(0, min(rows, self.capacity))
        with self._cond:
            if not self._cond.wait_for(
                lambda: self.in_flight + need <= self.capacity, self.timeout_s
            ):
                raise errors.ServingError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the server's row budget ({self.capacity} rows in flight) stayed full "
                    f"for {self.timeout_s:g} s; retry later or send smaller batches",
                )
            self.in_flight += need
        try:
            yield
        finally:
            with self._cond:
                self.in_flight -= need
                self._cond.notify_all()
