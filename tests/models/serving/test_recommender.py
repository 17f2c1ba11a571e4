"""The combined model's final order, on tiny hand-made stages whose scores we know.

Four items, retrieval scores (q . c) a 1.0, b 0.8, c 0.5, d 0.1 for every user, ranker
probabilities a 0.1, b 0.5, c 0.9, d 0.2. final = log p + w * (q . c):

    w = 0:  a -2.303  b -0.693  c -0.105  d -1.609   -> c, b, d, a (the ranker alone)
    w = 2:  a -0.303  b  0.907  c  0.895  d -1.409   -> b, c, a, d
    w = 10: a  7.697  b  7.307  c  4.895  d -0.609   -> a, b, c, d (retrieval dominates)

With the negative sampler's log q(item) added (training counts a 1, b 1, c 16, d 0; power
0.5: weights 1, 1, 4 and d floored to 1; q normalised over the drawn items a, b, c, sum 6):
log q = a -1.792, b -1.792, c -0.405, d -1.792, and at w = 2

            a -2.095  b -0.885  c  0.490  d -3.201   -> c, b, a, d
"""

import numpy as np
import pytest
import tensorflow as tf

from models.search.searchers import ExactSearcher
from models.serving import reference
from models.serving.export import NegativeCorrection, item_bias
from models.serving.recommender import Recommender
from schemas import features as F
from schemas import serving as C
from schemas.serving import EMBEDDING_KEY as EMBEDDING
from schemas.serving import QUERY_SIGNATURE, SCORE_TRANSFORMED, TRANSFORM_CANDIDATES
from schemas.serving import SCORE_CANDIDATES as SCORE_SIGNATURE
from schemas.serving import SCORES as RANKER_SCORES

IDS = ["a", "b", "c", "d"]
EMBEDDINGS = np.array([[1.0, 0.0], [0.8, 0.0], [0.5, 0.0], [0.1, 0.0]], np.float32)
PROBS = {"a": 0.1, "b": 0.5, "c": 0.9, "d": 0.2}
CATALOG = {
    F.ITEM_ID: np.array(IDS, object),
    F.PRIMARY_GENRE: np.array(["g"] * 4, object),
    F.YEAR: np.array([1990] * 4),
}
_USER = {
    F.USER_ID: tf.string,
    F.AGE: tf.int64,
    F.GENDER: tf.string,
    F.OCCUPATION: tf.string,
    F.TIMESTAMP: tf.int64,
}
_HISTORY = {F.HISTORY_ITEM_IDS: tf.string, F.HISTORY_GENRES: tf.string}
_ITEMS = {F.ITEM_ID: tf.string, F.PRIMARY_GENRE: tf.string, F.YEAR: tf.int64}
T = F.transformed_name
_ITEMS_XF = {T(F.ITEM_ID): tf.int64, T(F.PRIMARY_GENRE): tf.int64, F.YEAR_NORMALIZED: tf.float32}
# The fake Transform's item ids run opposite to the catalog rows (a 13, b 12, c 11, d 10), so
# scoring a catalog row as if it were the transformed id would pick the wrong probability.
XF_IDS = {item: 13 - i for i, item in enumerate(IDS)}


def _specs(dtypes: dict, rank: int) -> dict:
    return {k: tf.TensorSpec([None] * rank, d, name=k) for k, d in dtypes.items()}


class _Retrieval(tf.Module):
    @tf.function(input_signature=[{**_specs(_USER, 1), **_specs(_HISTORY, 2)}])
    def query(self, inputs):
        batch = tf.shape(inputs[F.USER_ID])[0]
        return {EMBEDDING: tf.tile(tf.constant([[1.0, 0.0]]), [batch, 1])}


class _Ranker(tf.Module):
    """Scores by item: `score_candidates` on raw ids, the other two via transformed ids."""

    def __init__(self):
        super().__init__()
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(list(PROBS), list(PROBS.values())), 0.01
        )
        self.xf = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                list(XF_IDS), list(XF_IDS.values()), tf.string, tf.int64
            ),
            99,
        )
        probs_by_xf = [PROBS[item] for item in sorted(XF_IDS, key=XF_IDS.get)]
        self.by_xf = tf.constant(probs_by_xf + [0.01])  # ids 10..13, then unknown

    @tf.function(input_signature=[{**_specs(_USER, 1), **_specs(_HISTORY, 2), **_specs(_ITEMS, 2)}])
    def score(self, inputs):
        return {RANKER_SCORES: self.table.lookup(inputs[F.ITEM_ID])}

    @tf.function(input_signature=[_specs(_ITEMS, 1)])
    def transform(self, inputs):
        ids = inputs[F.ITEM_ID]
        return {
            T(F.ITEM_ID): self.xf.lookup(ids),
            T(F.PRIMARY_GENRE): tf.zeros_like(self.xf.lookup(ids)),
            F.YEAR_NORMALIZED: tf.cast(inputs[F.YEAR], tf.float32) / 1000.0,
        }

    @tf.function(
        input_signature=[{**_specs(_USER, 1), **_specs(_HISTORY, 2), **_specs(_ITEMS_XF, 2)}]
    )
    def score_transformed(self, inputs):
        row = tf.minimum(inputs[T(F.ITEM_ID)] - 10, 4)
        return {RANKER_SCORES: tf.gather(self.by_xf, row)}


def _save_ranker(ranker: _Ranker, path: str, transformed: bool = True) -> None:
    signatures = {SCORE_SIGNATURE: ranker.score}
    if transformed:
        signatures[SCORE_TRANSFORMED] = ranker.score_transformed
        signatures[TRANSFORM_CANDIDATES] = ranker.transform
    tf.saved_model.save(ranker, path, signatures)


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """The two stages as real SavedModels with the signatures the Recommender calls."""
    root = tmp_path_factory.mktemp("stages")
    retrieval, ranker = _Retrieval(), _Ranker()
    tf.saved_model.save(retrieval, str(root / "r"), {QUERY_SIGNATURE: retrieval.query})
    _save_ranker(ranker, str(root / "k"))
    return tf.saved_model.load(str(root / "r")), tf.saved_model.load(str(root / "k"))


def _request(history: list[str]) -> dict:
    return {
        F.USER_ID: np.array([b"u"], object),
        F.AGE: np.array([30]),
        F.GENDER: np.array([b"F"], object),
        F.OCCUPATION: np.array([b"x"], object),
        F.TIMESTAMP: np.array([0]),
        F.HISTORY_ITEM_IDS: np.array([[h.encode() for h in history] or [b""]], object),
    }


COUNTS = {"a": 1, "b": 1, "c": 16, "d": 0}
LOG_Q = {"a": np.log(1 / 6), "b": np.log(1 / 6), "c": np.log(4 / 6), "d": np.log(1 / 6)}


def _serve(stages, weight: float, history: list[str], k: int = 4, bias=None) -> dict:
    retrieval, ranker = stages
    searcher = ExactSearcher(EMBEDDINGS, 4)
    model = Recommender(retrieval, ranker, searcher, CATALOG, k, 4, weight, bias)
    request = _request(history)
    inputs = {key: tf.constant(request[key], spec.dtype) for key, spec in C.REQUEST_SPEC.items()}
    return {key: v.numpy() for key, v in model.serving_default(inputs).items()}


@pytest.mark.parametrize(
    "weight, order",
    [(0.0, "cbda"), (2.0, "bcad"), (10.0, "abcd")],
)
def test_the_final_score_orders_the_candidates(stages, weight, order):
    out = _serve(stages, weight, [])
    assert [i.decode() for i in out[C.ITEM_IDS][0]] == list(order)
    probs = np.array([PROBS[i] for i in order], np.float32)
    retrieval = EMBEDDINGS[[IDS.index(i) for i in order], 0]
    np.testing.assert_allclose(out[C.SCORES][0], probs, rtol=1e-6)
    np.testing.assert_allclose(out[C.RETRIEVAL_SCORES][0], retrieval, rtol=1e-6)
    np.testing.assert_allclose(
        out[C.FINAL_SCORES][0], np.log(probs) + weight * retrieval, rtol=1e-5
    )


def test_negative_correction_is_log_count_to_the_power_over_the_drawn_items():
    bias = NegativeCorrection(weight=1.0, power=0.5).item_bias([COUNTS[i] for i in IDS])
    np.testing.assert_allclose(bias, [LOG_Q[i] for i in IDS], rtol=1e-6)
    doubled = NegativeCorrection(weight=2.0, power=0.5).item_bias([COUNTS[i] for i in IDS])
    np.testing.assert_allclose(doubled, 2 * bias, rtol=1e-6)
    assert NegativeCorrection(weight=0.0).item_bias([1, 2]) is None
    with pytest.raises(ValueError, match="counts"):
        NegativeCorrection().item_bias([1, -2])
    with pytest.raises(ValueError, match="power"):
        NegativeCorrection(power=float("nan"))
    with pytest.raises(ValueError, match="item_count"):
        item_bias(CATALOG, NegativeCorrection())


def test_the_log_q_term_reorders_the_candidates(stages):
    catalog = {**CATALOG, F.ITEM_COUNT: np.array([COUNTS[i] for i in IDS])}
    bias = item_bias(catalog, NegativeCorrection(weight=1.0, power=0.5))
    out = _serve(stages, 2.0, [], bias=bias)
    order = [i.decode() for i in out[C.ITEM_IDS][0]]
    assert order == ["c", "b", "a", "d"]  # "b", "c", "a", "d" without the term
    probs = np.array([PROBS[i] for i in order])
    retrieval = EMBEDDINGS[[IDS.index(i) for i in order], 0]
    want = np.log(probs) + 2.0 * retrieval + np.array([LOG_Q[i] for i in order])
    np.testing.assert_allclose(out[C.FINAL_SCORES][0], want, rtol=1e-5)
    # The reference does the same; a seen item's slot stays empty.
    request = _request(["b"])
    ref = reference.recommend(*stages, CATALOG, EMBEDDINGS, request, 3, 4, 4, 2.0, bias)
    got = _serve(stages, 2.0, ["b"], k=3, bias=bias)
    assert [i.decode() for i in got[C.ITEM_IDS][0]] == ["c", "a", "d"]
    np.testing.assert_array_equal(got[C.ITEM_IDS], ref[C.ITEM_IDS])
    np.testing.assert_allclose(got[C.FINAL_SCORES], ref[C.FINAL_SCORES], rtol=1e-5)


def test_an_item_bias_of_the_wrong_length_or_not_finite_is_refused(stages):
    retrieval, ranker = stages
    for bias in (np.zeros(3), np.array([0.0, np.nan, 0.0, 0.0])):
        with pytest.raises(ValueError, match="item_bias must be 4 finite values"):
            Recommender(retrieval, ranker, ExactSearcher(EMBEDDINGS, 4), CATALOG, 2, 4, 1.0, bias)


def test_seen_items_leave_empty_slots_that_score_zero(stages):
    out = _serve(stages, 2.0, ["b", "d"])
    assert [i.decode() for i in out[C.ITEM_IDS][0]] == ["c", "a", "", ""]
    np.testing.assert_allclose(out[C.FINAL_SCORES][0, 2:], 0.0)
    np.testing.assert_allclose(out[C.SCORES][0, 2:], 0.0)


def test_the_reference_computes_the_same_answer(stages):
    retrieval, ranker = stages
    request = _request(["d"])
    want = reference.recommend(retrieval, ranker, CATALOG, EMBEDDINGS, request, 3, 4, 4, 2.0)
    got = _serve(stages, 2.0, ["d"], k=3)
    assert [i.decode() for i in want[C.ITEM_IDS][0]] == ["b", "c", "a"]
    np.testing.assert_array_equal(got[C.ITEM_IDS], want[C.ITEM_IDS])
    for key in (C.SCORES, C.RETRIEVAL_SCORES, C.FINAL_SCORES):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5)


def test_a_negative_or_infinite_weight_is_refused(stages):
    retrieval, ranker = stages
    for weight in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="retrieval_weight"):
            Recommender(retrieval, ranker, ExactSearcher(EMBEDDINGS, 4), CATALOG, 2, 4, weight)


def test_rank_scores_caller_candidates_like_serving_default(stages):
    """`rank` transforms raw candidate ids; `serving_default` uses the precomputed catalog."""
    retrieval, ranker = stages
    model = Recommender(retrieval, ranker, ExactSearcher(EMBEDDINGS, 4), CATALOG, 4, 4, 0.0)
    request = _request([])
    inputs = {key: tf.constant(request[key], spec.dtype) for key, spec in C.REQUEST_SPEC.items()}
    served = model.serving_default(inputs)
    ranked = model.rank({**inputs, C.CANDIDATE_ITEM_IDS: served[C.ITEM_IDS]})
    np.testing.assert_allclose(ranked[C.SCORES].numpy(), served[C.SCORES].numpy(), rtol=1e-6)


def test_a_ranker_without_the_transformed_signatures_is_a_clear_error(tmp_path):
    path = str(tmp_path / "old-ranker")
    _save_ranker(_Ranker(), path, transformed=False)
    fake = _Retrieval()
    tf.saved_model.save(fake, str(tmp_path / "r"), {QUERY_SIGNATURE: fake.query})
    retrieval = tf.saved_model.load(str(tmp_path / "r"))
    with pytest.raises(ValueError, match="lacks signatures.*transform_candidates"):
        Recommender(
            retrieval, tf.saved_model.load(path), ExactSearcher(EMBEDDINGS, 4), CATALOG, 2, 4
        )


# The popularity prior (models/retrieval/prior.py) rides in the embeddings' last column:
# a query [1, 1] and items a [1, 0], b [.8, 0], c [.5, 0], d [.1, 1] give r = cos + prior
# = a 1.0, b .8, c .5, d 1.1 (prior d 1.0, others 0). With N = 2 the prior brings d into
# the candidates (a, b without it). At w = 2 the final score keeps `prior_kept` of it:
#   kept 0:   a log .1 + 2 * 1.0 = -0.303,  d log .2 + 2 * (1.1 - 1.0) = -1.409 -> a, d
#   kept 0.5: d log .2 + 2 * (1.1 - 0.5) = -0.409                          -> a, d
#   kept 1:   d log .2 + 2 * 1.1 = 0.591                                   -> d, a
PRIOR_EMBEDDINGS = np.array([[1.0, 0.0], [0.8, 0.0], [0.5, 0.0], [0.1, 1.0]], np.float32)
PRIOR = np.array([0.0, 0.0, 0.0, 1.0])


class _PriorRetrieval(tf.Module):
    @tf.function(input_signature=[{**_specs(_USER, 1), **_specs(_HISTORY, 2)}])
    def query(self, inputs):
        batch = tf.shape(inputs[F.USER_ID])[0]
        return {EMBEDDING: tf.tile(tf.constant([[1.0, 1.0]]), [batch, 1])}


@pytest.mark.parametrize(
    "kept, order, final",
    [(0.0, "ad", [-0.303, -1.409]), (0.5, "ad", [-0.303, -0.409]), (1.0, "da", [0.591, -0.303])],
)
def test_the_prior_picks_candidates_and_prior_kept_of_it_orders_them(
    stages, tmp_path, kept, order, final
):
    from models.serving.export import final_item_bias

    fake = _PriorRetrieval()
    tf.saved_model.save(fake, str(tmp_path / "r"), {QUERY_SIGNATURE: fake.query})
    retrieval, ranker = tf.saved_model.load(str(tmp_path / "r")), stages[1]
    bias = final_item_bias(CATALOG, None, PRIOR, 2.0, kept)
    model = Recommender(
        retrieval, ranker, ExactSearcher(PRIOR_EMBEDDINGS, 2), CATALOG, 2, 2, 2.0, bias
    )
    request = _request([])
    inputs = {key: tf.constant(request[key], spec.dtype) for key, spec in C.REQUEST_SPEC.items()}
    out = {key: v.numpy() for key, v in model.serving_default(inputs).items()}
    assert [i.decode() for i in out[C.ITEM_IDS][0]] == list(order)
    np.testing.assert_allclose(out[C.FINAL_SCORES][0], final, atol=1e-3)
    want = {"a": 1.0, "d": 1.1}  # the retrieval scores stay cos + prior
    np.testing.assert_allclose(out[C.RETRIEVAL_SCORES][0], [want[i] for i in order], rtol=1e-6)
    ref = reference.recommend(
        retrieval, ranker, CATALOG, PRIOR_EMBEDDINGS, request, 2, 2, 2, 2.0, bias
    )
    np.testing.assert_array_equal(out[C.ITEM_IDS], ref[C.ITEM_IDS])
    np.testing.assert_allclose(out[C.FINAL_SCORES], ref[C.FINAL_SCORES], rtol=1e-5)


def test_final_item_bias_by_hand_and_its_errors():
    from models.serving.export import final_item_bias

    catalog = {**CATALOG, F.ITEM_COUNT: np.array([COUNTS[i] for i in IDS])}
    correction = NegativeCorrection(weight=1.0, power=0.5)
    # log q - (1 - 0.25) * 2 * prior: d -1.792 - 1.5 = -3.292, the others log q.
    got = final_item_bias(catalog, correction, PRIOR, 2.0, 0.25)
    want = [LOG_Q["a"], LOG_Q["b"], LOG_Q["c"], LOG_Q["d"] - 1.5]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert final_item_bias(CATALOG, None, None, 2.0) is None
    assert final_item_bias(CATALOG, None, PRIOR, 2.0, 1.0) is None  # all of it kept
    assert final_item_bias(CATALOG, None, PRIOR, 0.0) is None  # no retrieval term at all
    with pytest.raises(ValueError, match="prior_kept"):
        final_item_bias(CATALOG, None, PRIOR, 2.0, 1.5)
    with pytest.raises(ValueError, match="4 finite values"):
        final_item_bias(CATALOG, None, PRIOR[:3], 2.0)


def test_retrieval_prior_reads_the_column_and_the_models_record(tmp_path):
    import json
    import types

    from models.serving.export import retrieval_prior

    extra = tmp_path / "assets.extra"
    extra.mkdir()
    index = types.SimpleNamespace(embeddings=np.array([[0.6, 0.25], [0.8, 0.125]], np.float32))
    (extra / "retrieval.json").write_text(json.dumps({"temperature": 0.05}))
    assert retrieval_prior(str(tmp_path), index) is None  # a model exported without one
    info = {"temperature": 0.05, "popularity_prior": {"beta": 0.1, "scale": 0.125}}
    (extra / "retrieval.json").write_text(json.dumps(info))
    # beta / s = 0.8: 0.8 * [0.25, 0.125] = [0.2, 0.1].
    np.testing.assert_allclose(retrieval_prior(str(tmp_path), index), [0.2, 0.1], rtol=1e-6)
