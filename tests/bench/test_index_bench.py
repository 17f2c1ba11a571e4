"""B3 bench logic: the knob pick, the target check, the peers (real Faiss / hnswlib from
.venv-ann, skipped without it) and the TF-op profile's telescoping breakdown."""

from __future__ import annotations

import numpy as np
import pytest

from bench import index_sweep as S


def _point(knob, recall, p50=1.0):
    return {"knob": knob, "recall@10": recall, "p50_ms": p50}


def test_pick_setting_takes_the_cheapest_value_reaching_the_target():
    sweep = [_point(1, 0.61), _point(2, 0.93), _point(4, 0.951), _point(8, 0.99)]
    assert S.pick_setting(sweep) == {**_point(4, 0.951), "reached": True}
    # exactly at the target counts as reaching it
    assert S.pick_setting([_point(1, 0.9), _point(2, 0.95)])["knob"] == 2


def test_pick_setting_without_a_point_reaching_it_takes_the_most_accurate_and_says_so():
    sweep = [_point(16, 0.90), _point(32, 0.94), _point(64, 0.93)]
    assert S.pick_setting(sweep) == {**_point(32, 0.94), "reached": False}
    with pytest.raises(ValueError, match="empty sweep"):
        S.pick_setting([])


def _row(recall, p50):
    return {"recall@10": recall, "p50_ms": p50}


def test_target_check_compares_with_the_fastest_peer_at_recall_095():
    searchers = {
        "a": _row(0.96, 0.20),
        "b": _row(0.94, 0.05),  # faster but below 0.95: not a qualified peer
        "c": _row(0.97, 0.30),
        "served": _row(0.96, 0.28),  # 0.28 / 0.20 = 1.4 <= 1.5
        "native": _row(0.96, 0.25),  # 0.25 / 0.20 = 1.25 > 1
    }
    out = S.target_check(searchers, ["a", "b", "c"], "served", "native")
    assert out["fastest_peer"] == "a" and out["peer_p50_ms"] == 0.20
    assert out["tf_op_ratio"] == pytest.approx(1.4) and out["tf_op_met"]
    assert out["native_ratio"] == pytest.approx(1.25) and not out["native_met"]
    assert out["met"] is False


def test_target_check_needs_recall_095_from_scann_too_and_a_qualified_peer():
    searchers = {"a": _row(0.95, 1.0), "served": _row(0.94, 0.5), "native": _row(0.99, 0.9)}
    out = S.target_check(searchers, ["a"], "served", "native")
    assert not out["tf_op_met"]  # faster, but recall 0.94
    assert out["native_met"] and out["native_ratio"] == pytest.approx(0.9)
    none = S.target_check({"a": _row(0.9, 1.0)}, ["a"], "served", "native")
    assert none["fastest_peer"] is None and none["met"] is False


def test_ivf_lists_is_4_sqrt_n_with_39_training_points_per_list():
    from bench.index_peers import ivf_lists

    assert ivf_lists(10_000) == 256  # 4 sqrt = 400, but 10,000 // 39 = 256
    assert ivf_lists(100_000) == 1265  # 4 * 316.2 = 1264.9
    assert ivf_lists(1_000_000) == 4000
    assert ivf_lists(100) == 2  # 4 sqrt(100) = 40 lists, but 100 // 39 = 2
    assert ivf_lists(10) == 1


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    items = rng.normal(size=(2000, 16)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    queries = rng.normal(size=(50, 16)).astype(np.float32)
    exact = np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :10]
    return items, queries, exact


@pytest.fixture(scope="module")
def peers():
    from bench import index_peers as P

    try:
        P.import_peers()
    except ImportError as exc:
        pytest.skip(str(exc))
    return P


def _recall(found, exact):
    from components.scann_index_builder.evaluate import recall_at_k

    return recall_at_k(np.asarray(found), exact)


@pytest.mark.parametrize("name", ["faiss_ivf_flat", "faiss_ivf_pq", "faiss_hnsw", "hnswlib"])
def test_each_peer_at_its_largest_knob_finds_the_exact_top10(peers, data, name):
    items, queries, exact = data
    peer = {cls.name: cls for cls in peers.PEERS}[name](10, 250).build(items)
    peer.set_knob(peer.knob_values()[-1])  # every list probed / ef 512 on 2,000 items
    batched = peer.search(queries)[0]
    assert batched.shape == (50, 10)
    assert _recall(batched, exact) >= 0.99
    single = np.concatenate([peer.search(q[None])[0] for q in queries[:10]])
    np.testing.assert_array_equal(single, batched[:10])  # 1-thread path answers alike
    assert peer.settings()[peer.knob] == peer.value
    assert peer.build_s > 0
    # bytes per item: every peer keeps the 64 B of floats (16-d) plus its own structure
    assert 16 * 4 < peer.bytes_per_item() < 16 * 4 + 600


def test_ivf_flat_probing_every_list_is_exact_and_the_sweep_stops_past_the_target(peers, data):
    items, queries, exact = data
    peer = peers.FaissIVFFlat(10, 250).build(items)
    assert peer.fixed["nlist"] == 51  # 2000 // 39 caps 4 sqrt(2000) = 179
    assert peer.knob_values() == [1, 2, 4, 8, 12, 16, 24, 32, 48]  # nprobe <= nlist

    def at(value):
        peer.set_knob(value)
        return peer

    points = S.sweep(at, peer.knob_values(), queries, exact, timed=5)
    recalls = [p["recall@10"] for p in points]
    assert recalls == sorted(recalls)  # more lists probed never loses a neighbour
    reached = [r >= S.TARGET_RECALL for r in recalls]
    assert recalls[-1] == 1.0 or sum(reached) == S.PAST_TARGET + 1
    at(51)
    np.testing.assert_array_equal(np.sort(peer.search(queries)[0], axis=1), np.sort(exact, axis=1))


def test_tf_op_profile_increments_add_up_to_each_layer(tmp_path):
    from bench.index_profile import LAYERS, breakdown_lines, profile_tf_op
    from bench.index_scann import pybind_searcher
    from models.search.params import IndexParams
    from models.search.searchers import ScannSearcher, scann_assets

    rng = np.random.default_rng(0)
    items = rng.normal(size=(2000, 16)).astype(np.float32)
    params = IndexParams(2000, False, 40, 8, True, 2, 100, training_sample_size=2000)
    searcher = ScannSearcher(scann_assets(items, params), params, 10)
    out = profile_tf_op(searcher, pybind_searcher(items, params), params, items[:40], 10, 2)
    cumulative = 0.0
    for name, _ in LAYERS:
        cumulative += out["steps_us"][name]["us"]
        assert cumulative == pytest.approx(out["median_us"][name])
    assert out["median_us"]["native"] > 0 and out["python_frames"]
    assert len(breakdown_lines(out)) == len(LAYERS) + 2
