"""The row budget: hand-checked admission on a capacity of 10 rows."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from serving import errors
from serving.budget import RowBudget


def test_rows_wait_for_the_budget_and_a_large_batch_runs_alone():
    budget = RowBudget(10, timeout_s=5)
    order = []
    with budget.hold(6):
        assert budget.in_flight == 6
        second = threading.Thread(target=lambda: _hold(budget, 6, order, "second"))
        second.start()
        time.sleep(0.3)
        assert order == [] and budget.in_flight == 6  # 6 + 6 > 10: it waits
        with budget.hold(4):  # 6 + 4 <= 10: admitted at once
            assert budget.in_flight == 10
        order.append("first done")
    second.join()
    assert order == ["first done", "second"]
    with budget.hold(25):  # larger than the budget: clamped to 10, runs alone
        assert budget.in_flight == 10
    assert budget.in_flight == 0


def _hold(budget, rows, order, name):
    with budget.hold(rows):
        order.append(name)


def test_a_full_budget_times_out_with_resource_exhausted():
    budget = RowBudget(4, timeout_s=0.2)
    with budget.hold(4):
        with pytest.raises(errors.ServingError) as err:
            with budget.hold(1):
                pass
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "4 rows" in err.value.message
    assert budget.in_flight == 0
    with pytest.raises(ValueError, match="row budget"):
        RowBudget(0)


def test_the_server_applies_the_budget(serve):
    from tests.serving import toy_model
    from tests.serving.conftest import predict_request

    running = serve((1,), "--max-inflight-rows", "3", "--budget-timeout-seconds", "0.5")
    budget = running.server.predictor.budget
    assert budget.capacity == 3
    with budget.hold(3):  # the budget is full: a request waits, then gives up
        with pytest.raises(grpc.RpcError) as err:
            running.predict_stub.Predict(predict_request(toy_model.query_batch(rows=2)))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    response = running.predict_stub.Predict(predict_request(toy_model.query_batch(rows=8)))
    assert response.model_spec.version.value == 1  # a batch over the budget runs alone
