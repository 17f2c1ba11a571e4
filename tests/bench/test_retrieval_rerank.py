"""bench/retrieval_rerank.py: the score-combination rules, worked out by hand."""

import numpy as np
import pytest

from bench import retrieval_rerank as R


def _cands():
    # One query, 3 candidates in the served order; slot 2 is an exclusion (-1).
    return R.Candidates(
        items=np.array([[7, 3, -1]]),
        probs=np.array([[0.5, 0.8, 0.99]]),
        retrieval=np.array([[0.30, 0.20, 0.90]]),
    )


def test_rules_by_hand():
    log_q = np.zeros(10)
    log_q[7], log_q[3] = np.log(0.5), np.log(0.01)
    tops = R.rank_by_rules(
        _cands(), temperature=0.1, log_q=log_q, weights=(0.0, 1.0), log_qs=(0.0, 1.0)
    )
    # retrieval: r / T = 3.0 (item 7) > 2.0 (item 3); the exclusion goes last as -1.
    assert tops["retrieval"].tolist() == [[7, 3, -1]]
    # ranker alone: log .8 > log .5.
    assert tops["ranker_logp"].tolist() == [[3, 7, -1]]
    # logp + r/T: log .5 + 3 = 2.307 > log .8 + 2 = 1.777.
    assert tops[R.rule_name("logp", 1.0, 0.0)].tolist() == [[7, 3, -1]]
    # logit + r/T: logit(.5) + 3 = 3.0 < logit(.8) + 2 = log 4 + 2 = 3.386.
    assert tops[R.rule_name("logit", 1.0, 0.0)].tolist() == [[3, 7, -1]]
    # + log q: 3.0 + log .5 = 2.307 > 3.386 + log .01 = -1.219.
    assert tops[R.rule_name("logit", 1.0, 1.0)].tolist() == [[7, 3, -1]]


def test_prior_rules_take_the_prior_out_of_the_retrieval_score():
    prior = np.zeros(10)
    prior[7] = 0.15  # item 7's r = 0.30 is 0.15 cosine + 0.15 prior; item 3 has none
    tops = R.rank_by_rules(
        _cands(), temperature=0.1, log_q=np.zeros(10), weights=(1.0,), log_qs=(0.0,), prior=prior
    )
    # with the prior: log .5 + 3 = 2.307 > log .8 + 2 = 1.777 (as above);
    assert tops[R.rule_name("logp", 1.0, 0.0)].tolist() == [[7, 3, -1]]
    # without: log .5 + 1.5 = 0.807 < 1.777.
    assert tops["logp+1(r-prior)/T+0logq"].tolist() == [[3, 7, -1]]
    assert not any("prior" in rule for rule in R.rank_by_rules(_cands(), 0.1, np.zeros(10)))


def test_the_served_rule_orders_by_the_models_own_final_scores():
    cands = R.Candidates(**{**_cands().__dict__, "final": np.array([[0.0, 1.0, 9.0]])})
    tops = R.rank_by_rules(cands, temperature=0.1, log_q=np.zeros(10))
    assert tops["served"].tolist() == [[3, 7, -1]]  # the exclusion's 9.0 does not count
    assert "served" not in R.rank_by_rules(_cands(), temperature=0.1, log_q=np.zeros(10))


def test_ties_keep_the_served_order():
    cands = R.Candidates(
        items=np.array([[4, 5]]), probs=np.array([[0.5, 0.5]]), retrieval=np.array([[0.1, 0.1]])
    )
    tops = R.rank_by_rules(cands, temperature=1.0, log_q=np.zeros(6))
    assert all(t.tolist() == [[4, 5]] for t in tops.values())


def test_negative_log_q_is_the_log_of_count_to_the_power_normalised():
    log_q = R.negative_log_q(np.array([1.0, 16.0, 0.0]), power=0.5)
    # weights 1, 4, 1e-9 ** .5 = 3.16e-5; sum 5.0000316
    np.testing.assert_allclose(
        np.exp(log_q), [1 / 5.0000316, 4 / 5.0000316, 3.1623e-5 / 5.0000316], rtol=1e-4
    )
    assert np.exp(log_q).sum() == pytest.approx(1.0)


def test_call_batched_concatenates_batches_and_names_a_missing_input():
    import tensorflow as tf

    from bench import retrieval_served as V
    from schemas import features as F
    from schemas import serving as C

    queries = {
        name: np.zeros(5, spec.dtype.as_numpy_dtype) for name, spec in C.REQUEST_SPEC.items()
    }
    queries = {k: (v if v.dtype != object else np.array([b"u"] * 5)) for k, v in queries.items()}
    pad = F.PAD.encode() if isinstance(F.PAD, str) else F.PAD
    calls = []

    def signature(**inputs):  # item ids a, PAD; scores = the call's batch size
        n = int(tf.shape(inputs[F.USER_ID])[0])
        calls.append(n)
        return {C.ITEM_IDS: tf.constant([[b"a", pad]] * n), C.SCORES: tf.fill([n, 2], float(n))}

    out = V.call_batched(signature, queries, (C.ITEM_IDS, C.SCORES), batch=2)
    assert calls == [2, 2, 1]
    assert out[C.SCORES][:, 0].tolist() == [2, 2, 2, 2, 1]
    assert V.query_model(signature, queries, batch=4) == [[b"a"]] * 5  # padding removed
    del queries[F.USER_ID]
    with pytest.raises(ValueError, match=F.USER_ID):
        V.call_batched(signature, queries, (C.SCORES,))
