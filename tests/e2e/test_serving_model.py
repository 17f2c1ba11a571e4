"""The combined SavedModel the pipeline assembled: signatures, edge cases, ops, canary."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from models.serving import canary, export, reference
from schemas import features as F
from schemas import serving as C

pytestmark = pytest.mark.e2e

# Lists every op of a SavedModel that TensorFlow's own registry lacks. Runs in a fresh
# process that imports only TensorFlow, so no custom op library is registered.
_UNREGISTERED_OPS = """
import sys
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
sm = saved_model_pb2.SavedModel()
sm.ParseFromString(open(sys.argv[1], "rb").read())
ops = set()
for graph in sm.meta_graphs:
    ops |= {n.op for n in graph.graph_def.node}
    for fn in graph.graph_def.library.function:
        ops |= {n.op for n in fn.node_def}
print(len(ops), *sorted(o for o in ops if op_def_registry.get(o) is None))
"""


@pytest.fixture(scope="module")
def assembled(run):
    _, result = run
    uri = result["assembly"]["uri"]
    return uri, {v: os.path.join(uri, v) for v in ("portable", "scann")}


@pytest.fixture(scope="module")
def golden(assembled):
    uri, _ = assembled
    data = np.load(os.path.join(uri, "canary_portable.npz"), allow_pickle=True)
    return {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("request/")}


@pytest.fixture(scope="module")
def portable(assembled):
    return tf.saved_model.load(assembled[1]["portable"])


def _call(model, signature, inputs):
    fn = model.signatures[signature]
    specs = fn.structured_input_signature[1]
    outputs = fn(**{k: tf.constant(inputs[k], s.dtype) for k, s in specs.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def _unregistered(path):
    out = subprocess.run(
        [sys.executable, "-c", _UNREGISTERED_OPS, os.path.join(path, "saved_model.pb")],
        capture_output=True,
        text=True,
        check=True,
    )
    count, *missing = out.stdout.split()
    return int(count), missing


def test_the_portable_variant_uses_only_tensorflow_ops(assembled):
    count, missing = _unregistered(assembled[1]["portable"])
    assert count > 50  # the whole graph was read: Transform, both towers, the ranker
    assert missing == []


def test_the_scann_variant_needs_only_scann_ops_beyond_tensorflow(assembled, parts):
    _, missing = _unregistered(assembled[1]["scann"])
    if parts["index"].params.exact:  # a tiny catalog: ScaNN falls back to exact search
        assert missing == []
    else:
        assert missing and all(op.lower().startswith("scann") for op in missing)


def test_every_canary_passed_and_saw_the_edge_cases(run, golden):
    _, result = run
    variants = result["assembly"]["variants"]
    assert set(variants) == {"portable", "scann"}
    assert all(v["passed"] and v["requests"] == len(golden[F.USER_ID]) for v in variants.values())
    assert b"__canary_empty_history__" in set(golden[F.USER_ID])


def test_a_wrong_answer_or_a_blown_budget_fails_the_canary(assembled, tmp_path):
    uri, dirs = assembled
    data = dict(np.load(os.path.join(uri, "canary_portable.npz"), allow_pickle=True))
    data[f"expected/{C.SCORES}"] = data[f"expected/{C.SCORES}"] + 0.5
    golden = str(tmp_path / "bad.npz")
    np.savez(golden, **data)
    (verdict,) = canary.run_all_in_fresh_process(
        [(dirs["portable"], golden, str(tmp_path / "v.json"))],
        budget_ms=1e-3,
        min_overlap=0.8,
        repeats=1,
    )
    assert not verdict["passed"]
    assert any(p.startswith("request 0: scores") for p in verdict["problems"])
    assert any("over the budget" in p for p in verdict["problems"])


def test_one_canary_process_judges_each_model_on_its_own(assembled, tmp_path):
    """A bad golden set and a missing model fail their own verdicts, not the good one's."""
    uri, dirs = assembled
    data = dict(np.load(os.path.join(uri, "canary_scann.npz"), allow_pickle=True))
    data[f"expected/{C.FINAL_SCORES}"] = data[f"expected/{C.FINAL_SCORES}"] - 1.0
    np.savez(str(tmp_path / "bad.npz"), **data)
    jobs = [
        (dirs["scann"], str(tmp_path / "bad.npz"), str(tmp_path / "scann.json")),
        (
            str(tmp_path / "no-model"),
            os.path.join(uri, "canary_portable.npz"),
            str(tmp_path / "x.json"),
        ),
        (dirs["portable"], os.path.join(uri, "canary_portable.npz"), str(tmp_path / "port.json")),
    ]
    bad, missing, good = canary.run_all_in_fresh_process(jobs, 1e4, 0.8, repeats=1)
    assert good["passed"] and good["variant"] == "portable", good
    assert not bad["passed"] and bad["variant"] == "scann"
    assert not missing["passed"] and "no-model" in missing["problems"][0]


@pytest.fixture(scope="module")
def parts(assembled):
    """The pieces the assembler combined: both models, the index, the catalog."""
    from tfx.types import standard_artifacts

    from components.recommender_assembler.executor import read_catalog
    from models.search.index import load_index

    _, dirs = assembled
    with open(os.path.join(dirs["portable"], C.ASSETS_EXTRA, C.EXPORT_INFO)) as f:
        meta = json.load(f)
    catalog = standard_artifacts.Examples()
    catalog.uri, catalog.split_names = meta["catalog"], '["catalog"]'
    load = lambda uri: tf.saved_model.load(os.path.join(uri, "Format-Serving"))
    return {
        "meta": meta,
        "index": load_index(meta["index"]),
        "catalog": read_catalog(catalog),
        "retrieval": load(meta["retrieval_model"]),
        "ranking": load(meta["ranking_model"]),
    }


def test_the_served_graph_has_no_control_flow_and_states_its_batch_limit(assembled, parts):
    from models.search.searchers import SCORE_BUDGET
    from serving import servable as S

    meta = parts["meta"]
    # The small catalog's portable search is exact: scores [batch, catalog] within budget.
    assert meta["max_batch"] == SCORE_BUDGET // meta["catalog_size"]
    served = S.Servable(assembled[1]["portable"], 1)
    assert served.max_batch == meta["max_batch"]
    # So the local server runs every signature inline on TF's single-threaded executor.
    assert {s.executor for s in served.signatures.values()} == {S.SINGLE_THREADED}


def test_signatures_agree_with_the_two_stage_reference(parts, golden, portable):
    index, catalog, n = parts["index"], parts["catalog"], parts["meta"]["n"]
    depth, weight = parts["meta"]["search_depth"], parts["meta"]["retrieval_weight"]
    models = parts["retrieval"], parts["ranking"]
    ordered = export.catalog_in_index_order(catalog, index.item_ids)
    correction = export.NegativeCorrection(**parts["meta"]["negative_correction"])
    retrieval_dir = os.path.join(parts["meta"]["retrieval_model"], "Format-Serving")
    prior = export.retrieval_prior(retrieval_dir, index)
    assert prior is not None and prior.max() > 0  # the default two-tower has its prior
    kept = parts["meta"]["popularity_prior"]["kept_in_final_score"]
    bias = export.final_item_bias(ordered, correction, prior, weight, kept)
    expected = reference.recommend(
        *models, ordered, index.embeddings, golden, 10, n, depth, weight, bias
    )
    answer = _call(portable, C.SERVING_DEFAULT, golden)
    assert canary.compare(answer, expected, True, 1.0) == []
    # retrieve: the top N unseen items by retrieval score.
    got = _call(portable, C.RETRIEVE, golden)
    _, scores = reference.retrieve(parts["retrieval"], catalog, index.embeddings, golden, n, depth)
    np.testing.assert_allclose(got[C.RETRIEVAL_SCORES], scores, atol=1e-5)
    # rank: the ranker's probabilities of caller-chosen candidates, unknown ids included.
    some = [i.encode() for i in catalog[F.ITEM_ID][:2]]
    candidates = np.array([[some[0], b"__no_such_item__", some[1]]] * len(golden[F.USER_ID]))
    got = _call(portable, C.RANK, golden | {C.CANDIDATE_ITEM_IDS: candidates.astype(object)})
    want = reference.rank(parts["ranking"], catalog, golden, candidates.astype(object))
    np.testing.assert_allclose(got[C.SCORES], want, atol=1e-5)


def test_the_final_score_chains_retrieval_and_ranker_probabilities(parts, golden, portable):
    # weight = 1 / the two-tower's softmax temperature, so that the retrieval score times
    # it is the log-softmax over the catalog up to a per-user constant.
    model_dir = parts["meta"]["retrieval_model"]
    with open(os.path.join(model_dir, "Format-Serving", C.ASSETS_EXTRA, "retrieval.json")) as f:
        info = json.load(f)
    temperature = info["temperature"]
    assert parts["meta"]["retrieval_weight"] == pytest.approx(1.0 / temperature)
    assert parts["meta"]["retrieval_weight_source"].startswith("1 / temperature")
    # + log q(item), q BehaviorSequenceGen's negative sampler: count ** 0.75 over the items
    # with training interactions (SequenceConfig's default, read from the examples artifact).
    assert parts["meta"]["negative_correction"]["power"] == 0.75
    assert parts["meta"]["negative_correction"]["weight"] == 1.0
    counts = dict(zip(parts["catalog"][F.ITEM_ID], parts["catalog"][F.ITEM_COUNT], strict=True))
    total = sum(c**0.75 for c in counts.values() if c > 0)
    log_q = {i.encode(): np.log(max(c, 1) ** 0.75 / total) for i, c in counts.items()}
    # - the retrieval score's popularity prior beta log(1 + n) / T: it picks the candidates
    # but is not in the order (AssemblyConfig.prior_kept 0). The item embeddings' last
    # column is s log(1 + n) with n a count, read back here.
    prior_info = info["popularity_prior"]
    assert prior_info["beta"] == 0.03
    assert parts["meta"]["popularity_prior"]["kept_in_final_score"] == 0.0
    npz = np.load(os.path.join(model_dir, "item_embeddings.npz"))
    n = np.expm1(npz["embeddings"][:, -1].astype(np.float64) / prior_info["scale"])
    np.testing.assert_allclose(n, np.round(n), atol=1e-2)
    assert np.round(n).max() == prior_info["max_count"] > 0
    prior = {i.encode(): 0.03 * np.log1p(np.round(c)) for i, c in zip(npz["ids"], n, strict=True)}
    out = _call(portable, C.SERVING_DEFAULT, golden)
    filled = out[C.ITEM_IDS] != b""
    item_log_q = np.vectorize(lambda i: log_q.get(i, 0.0))(out[C.ITEM_IDS])
    item_prior = np.vectorize(lambda i: prior.get(i, 0.0))(out[C.ITEM_IDS])
    want = np.log(out[C.SCORES]) + (out[C.RETRIEVAL_SCORES] - item_prior) / temperature
    want += item_log_q
    np.testing.assert_allclose(out[C.FINAL_SCORES][filled], want[filled], rtol=1e-5, atol=1e-4)
    final = np.where(filled, out[C.FINAL_SCORES], -np.inf)
    assert (np.diff(final, axis=1)[filled[:, 1:]] <= 1e-6).all()  # best first


def test_tf_examples_give_the_same_answers(golden, portable):
    examples = []
    for row in range(len(golden[F.USER_ID])):
        feature = {
            key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[golden[key][row]]))
            if golden[key].dtype == object
            else tf.train.Feature(int64_list=tf.train.Int64List(value=[golden[key][row]]))
            for key in C.REQUEST_DEFAULTS
        }
        history = [h for h in golden[F.HISTORY_ITEM_IDS][row] if h]
        feature[F.HISTORY_ITEM_IDS] = tf.train.Feature(bytes_list=tf.train.BytesList(value=history))
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        examples.append(example.SerializeToString())
    got = _call(portable, C.SERVE_TF_EXAMPLES, {C.EXAMPLES: np.array(examples, dtype=object)})
    want = _call(portable, C.SERVING_DEFAULT, golden)
    np.testing.assert_array_equal(got[C.ITEM_IDS], want[C.ITEM_IDS])
    np.testing.assert_allclose(got[C.SCORES], want[C.SCORES], atol=1e-6)


def test_unknown_ids_and_empty_histories_never_fail(portable, parts):
    request = {
        F.USER_ID: np.array([b"__nobody__", b"__nobody_either__"], dtype=object),
        F.AGE: np.array([-1, 200]),
        F.GENDER: np.array([b"", b"??"], dtype=object),
        F.OCCUPATION: np.array([b"", b"astronaut"], dtype=object),
        F.TIMESTAMP: np.array([0, 4_000_000_000]),
        F.HISTORY_ITEM_IDS: np.zeros((2, 0), dtype=object),  # no history at all
    }
    out = _call(portable, C.SERVING_DEFAULT, request)
    assert out[C.ITEM_IDS].shape == (2, 10)
    assert np.isfinite(out[C.SCORES]).all() and (out[C.SCORES] > 0).all()
    known = set(parts["catalog"][F.ITEM_ID])
    assert {i.decode() for i in out[C.ITEM_IDS].ravel()} <= known


def test_seen_items_are_never_recommended(portable, golden):
    first = _call(portable, C.SERVING_DEFAULT, golden)
    # Add the first answer's items to each history: none of them may come back.
    history = np.concatenate([golden[F.HISTORY_ITEM_IDS], first[C.ITEM_IDS]], axis=1)
    again = _call(portable, C.SERVING_DEFAULT, golden | {F.HISTORY_ITEM_IDS: history})
    for row in range(len(history)):
        assert not set(again[C.ITEM_IDS][row]) & (set(history[row]) - {b""})
