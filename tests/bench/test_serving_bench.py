"""B4 bench helpers: statistics, the grown catalog, requests and the cost estimate."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from bench import serving as S
from bench import serving_client as C
from bench import serving_model as M
from schemas import features as F


def test_percentile_interpolates_linearly():
    # Sorted [1, 2, 3, 4]: position q/100 * 3; 50 -> 1.5 -> 2.5; 99 -> 2.97 -> 3.97.
    assert S.percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert S.percentile([4, 1, 3, 2], 99) == pytest.approx(3.97)
    assert S.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        S.percentile([], 50)


def test_summarize_and_median_of_repeats():
    summary = S.summarize([1.0, 2.0, 3.0, 4.0], wall_s=2.0)
    assert summary["n"] == 4
    assert summary["mean_ms"] == pytest.approx(2.5)
    assert summary["rps"] == pytest.approx(2.0)  # 4 requests in 2 s
    assert "rps" not in S.summarize([1.0])
    assert S.median_of([{"a": 1.0}, {"a": 5.0}, {"a": 3.0}], "a") == 3.0


def _catalog():
    return {
        F.ITEM_ID: ["a", "b", "c"],
        F.TITLE: ["A", "B", "C"],
        F.PRIMARY_GENRE: ["Drama", "Comedy", "Drama"],
        F.YEAR: [1990, 2000, 2010],
    }


def test_grow_catalog_keeps_real_items_and_samples_the_rest():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((3, 64)).astype(np.float32)
    real *= np.array([[1.0], [2.0], [0.5]], np.float32) / np.linalg.norm(real, axis=1)[:, None]
    catalog, emb = M.grow_catalog(_catalog(), real, 203, seed=1)
    assert list(catalog[F.ITEM_ID][:3]) == ["a", "b", "c"]
    assert list(catalog[F.ITEM_ID][3:5]) == ["bench-000000", "bench-000001"]
    assert len(set(catalog[F.ITEM_ID])) == 203 and emb.shape == (203, 64)
    np.testing.assert_array_equal(emb[:3], real)
    assert set(catalog[F.PRIMARY_GENRE][3:]) <= {"Drama", "Comedy"}
    assert set(catalog[F.YEAR][3:].tolist()) <= {1990, 2000, 2010}
    # Each synthetic row has a parent's norm (1, 2 or 0.5) and points near it: noise of
    # 0.3 x the norm gives cos ~ 1 / sqrt(1 + 0.09) ~ 0.96 in 64-d.
    norms = np.linalg.norm(emb[3:], axis=1)
    cos = (emb[3:] / norms[:, None]) @ (real / np.linalg.norm(real, axis=1)[:, None]).T
    parent = cos.argmax(axis=1)
    np.testing.assert_allclose(norms, np.array([1.0, 2.0, 0.5])[parent], rtol=1e-5)
    assert cos.max(axis=1).min() > 0.85


def test_grow_catalog_rejects_bad_sizes():
    emb = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="n = 2 is below"):
        M.grow_catalog(_catalog(), emb, 2)
    with pytest.raises(ValueError, match="2 embeddings for 3"):
        M.grow_catalog(_catalog(), emb[:2], 5)
    clash = dict(_catalog(), **{F.ITEM_ID: ["a", "bench-000000", "c"]})
    with pytest.raises(ValueError, match="clash"):
        M.grow_catalog(clash, emb, 4)


def test_newest_artifact_picks_the_largest_id(tmp_path):
    for name in ("3", "12", "x"):
        os.makedirs(tmp_path / "retrieval_trainer" / "model" / name)
    found = M.newest_artifact(str(tmp_path), "retrieval_trainer", "model")
    assert found.endswith(os.path.join("model", "12"))
    with pytest.raises(FileNotFoundError, match="ranking_trainer/model"):
        M.newest_artifact(str(tmp_path), "ranking_trainer", "model")


def test_requests_carry_twenty_distinct_catalog_items():
    ids = [f"i{k}" for k in range(30)]
    requests = C.make_requests(ids, 3, seed=0)
    for request in requests:
        history = request.inputs[F.HISTORY_ITEM_IDS]
        assert [d.size for d in history.tensor_shape.dim] == [1, F.HISTORY_LENGTH]
        items = [v.decode() for v in history.string_val]
        assert len(set(items)) == F.HISTORY_LENGTH and set(items) <= set(ids)
        assert request.inputs[F.AGE].int64_val[0] >= 18
        assert request.model_spec.signature_name == "serving_default"


def test_answer_ok_wants_k_nonempty_ids():
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.outputs["item_ids"].string_val.extend([b"x"] * C.K)
    assert C.answer_ok(response)
    response.outputs["item_ids"].string_val[3] = b""
    assert not C.answer_ok(response)


def test_exact_search_reads_n_times_d_floats():
    from models.search.index import build_index
    from models.search.params import choose_params

    emb = np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32)
    index = build_index([f"i{k}" for k in range(100)], emb, choose_params(100))
    assert M.search_bytes(index, 50, "portable") == 4 * 100 * 8
    assert M.search_bytes(index, 50, "scann") == 4 * 100 * 8


def test_physical_bound_adds_memory_and_compute_time():
    cost = {"search_bytes_portable": 2e9, "ranker_flops": 5e9}
    bound = S.physical_bound(cost, "portable", {"memory_gbs": 10.0, "gflops": 50.0})
    assert bound["bound_ms"] == pytest.approx(200.0 + 100.0)  # 2 GB at 10 GB/s + 5 GF at 50


def test_verdict_names_missed_targets():
    entry = {"p50_ms": 8.0, "p99_ms": 30.0, "rps_c8": 310.0, "errors": 0}
    assert S.verdict(entry) == (
        "p50 <= 10 ms: met, p99 <= 25 ms: MISSED, >= 300 req/s at c8: met, no errors: met"
    )
    batching = {"p50_ms_batching": 11.0, "p99_ms_batching": 20.0, "rps_c8_batching": 290.0}
    assert S.verdict(entry | batching | {"errors_batching": 2}, "_batching") == (
        "p50 <= 10 ms: MISSED, p99 <= 25 ms: met, >= 300 req/s at c8: MISSED, no errors: MISSED"
    )


def test_memory_of_this_process():
    mem = C.memory_mib(os.getpid())
    assert 0 < mem["VmRSS"] <= mem["VmHWM"]


def test_summarize_without_successes_is_nan_not_an_error():
    summary = S.summarize([], wall_s=1.0)
    assert summary["n"] == 0 and summary["rps"] == 0.0 and np.isnan(summary["p99_ms"])


def test_cpu_seconds_of_this_process_grow_with_work():
    before = C.cpu_seconds(os.getpid())
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    assert C.cpu_seconds(os.getpid()) >= before


def test_merge_results_replaces_measured_sizes_and_keeps_the_rest(tmp_path):
    path = str(tmp_path / "serving.json")
    assert S.merge_results(path, {"10000": {"p50_ms": 1.0}}) == {"10000": {"p50_ms": 1.0}}
    S.write_json({"10000": {"p50_ms": 9.0}, "100000": {"p50_ms": 8.0}}, path)
    merged = S.merge_results(path, {"10000": {"p50_ms": 7.0}})
    assert merged == {"10000": {"p50_ms": 7.0}, "100000": {"p50_ms": 8.0}}
    assert list(S.merge_results(path, {"5000": {}})) == ["5000", "10000", "100000"]
