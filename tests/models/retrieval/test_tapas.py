"""Hand-derived TAPAS (two-pass adaptive sampled softmax) on a batch of 3, 6 sampled labels.

Set-up (model temperature 1, so logit(b, j) = q_b . w_j):
  queries q0 = [1, 0], q1 = [0, 1], q2 = [1, 0]: rows 0 and 2 read a_j, row 1 reads c_j
  of w_j = [a_j, c_j].
  positives: row 0 -> id 6 = [1, 0], row 1 -> id 7 = [0, 2.5], row 2 -> id 8 = [2, 0]
  sampled (first pass, unique): ids 0..4 and 7 (7 is row 1's positive: an accidental hit)
    id 0 = [-2, 5], id 1 = [2, 2], id 2 = [1, 1], id 3 = [-1, 0], id 4 = [0, -2], id 7
  log expected counts: sampled [ln 2, 0, 0, 0, 0, 0]; positives [0, ln 2, 0].

Batch logits per label (rows 0, 1, 2) and second-pass scores s(j) = ln sum_b e^(logit/T):
  id 0: (-2, 5, -2)   T=1: ln(2e^-2 + e^5) = 5.0018     sum of logits  1
  id 1: (2, 2, 2)     T=1: 2 + ln 3 = 3.0986            sum 6
  id 2: (1, 1, 1)     T=1: 1 + ln 3 = 2.0986            sum 3
  id 3: (-1, 0, -1)   T=1: ln(2e^-1 + 1) = 0.5514       sum -2
  id 4: (0, -2, 0)    T=1: ln(2 + e^-2) = 0.7586        sum -2
  id 7: (0, 2.5, 0)   T=1: ln(2 + e^2.5) = 2.6520       sum 2.5
num_resampled = 3. T = 1 keeps {0, 1, 7} (id 0's one large logit dominates its score).
T = 100: s(j) ~ ln 3 + mean logit / 100: id 1 1.1186, id 2 1.1086, id 7 1.1070, id 0 1.1025,
so {1, 2, 7}: the ranking of the plain batch sums.
"""

import math

import numpy as np
import tensorflow as tf

from models.retrieval import losses, tapas

W = np.zeros((9, 2), np.float32)
W[[0, 1, 2, 3, 4, 6, 7, 8]] = [[-2, 5], [2, 2], [1, 1], [-1, 0], [0, -2], [1, 0], [0, 2.5], [2, 0]]
Q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
POSITIVES = tf.constant([6, 7, 8], tf.int64)
SAMPLED = tf.constant([0, 1, 2, 3, 4, 7], tf.int64)
SAMPLED_LOG_Q = np.array([math.log(2.0), 0, 0, 0, 0, 0], np.float32)
POSITIVE_LOG_Q = np.array([0.0, math.log(2.0), 0.0], np.float32)


def _loss(temperature_t, **kwargs):
    return float(
        tapas.tapas_sampled_softmax_loss(
            Q,
            W,
            POSITIVES,
            SAMPLED,
            SAMPLED_LOG_Q,
            num_resampled=3,
            resampling_temperature=temperature_t,
            temperature=1.0,
            positive_log_q=POSITIVE_LOG_Q,
            **kwargs,
        )
    )


def _kept(temperature_t):
    sampled = tf.gather(W, SAMPLED)
    idx, scores = tapas.rank_resample(Q, sampled, 3, temperature_t)
    return set(tf.gather(SAMPLED, idx).numpy().tolist()), scores.numpy()


def test_resampling_keeps_the_best_batch_scores():
    kept, scores = _kept(1.0)
    assert kept == {0, 1, 7}
    np.testing.assert_allclose(scores, [5.0018, 3.0986, 2.0986, 0.5514, 0.7586, 2.6520], atol=1e-4)
    kept, scores = _kept(100.0)
    assert kept == {1, 2, 7}
    np.testing.assert_allclose(scores[[1, 2, 5, 0]], [1.1186, 1.1086, 1.1070, 1.1025], atol=1e-4)


def test_corrected_loss_on_the_kept_labels_t1():
    # Kept {0, 1, 7}; loss logits are logit - log expected count (no division by T):
    # row 0: pos 1; id 0: -2 - ln 2, id 1: 2, id 7: 0
    #   ln(e + e^-2 / 2 + e^2 + 1) - 1 = ln(11.175006) - 1 = 1.413680
    # row 1: pos 2.5 - ln 2; id 0: 5 - ln 2, id 1: 2, id 7: masked (its positive)
    #   ln(e^2.5 / 2 + e^5 / 2 + e^2) - 1.806853 = ln(87.686883) - 1.806853 = 2.666919
    # row 2: pos 2; id 0: -2 - ln 2, id 1: 2, id 7: 0
    #   ln(2 e^2 + e^-2 / 2 + 1) - 2 = ln(15.845780) - 2 = 0.762903
    # mean = 4.843502 / 3 = 1.614501
    np.testing.assert_allclose(_loss(1.0), 1.614501, atol=1e-5)


def test_temperature_is_used_only_to_pick_the_labels():
    # T = 100 keeps {1, 2, 7}; the loss logits are NOT divided by 100:
    # row 0: ln(e + e^2 + e + 1) - 1 = ln(13.825620) - 1 = 1.626523
    # row 1: ln(e^2.5 / 2 + e^2 + e) - 1.806853 = ln(16.198585) - 1.806853 = 0.978071
    # row 2: ln(2 e^2 + e + 1) - 2 = ln(18.496394) - 2 = 0.917576
    # mean = 3.522170 / 3 = 1.174057
    np.testing.assert_allclose(_loss(100.0), 1.174057, atol=1e-5)
    # The same kept labels through plain sampled softmax give the same value.
    plain = losses.sampled_softmax_loss(
        Q,
        W,
        POSITIVES,
        [1, 2, 7],
        [0.0, 0.0, 0.0],
        temperature=1.0,
        positive_log_q=POSITIVE_LOG_Q,
    )
    np.testing.assert_allclose(float(plain), 1.174057, atol=1e-5)


def test_hits_kept_when_asked():
    # T = 1, remove_hits=False: row 1 keeps id 7 = its positive: + e^2.5 in its sum:
    # ln(87.686883 + 12.182494) - 1.806853 = ln(99.869377) - 1.806853 = 2.797010
    # mean = (1.413680 + 2.797010 + 0.762903) / 3 = 1.657864
    np.testing.assert_allclose(_loss(1.0, remove_hits=False), 1.657864, atol=1e-5)


def test_unique_log_expected_count():
    # 1 - (1 - q)^n: q 0.5, n 2 -> 0.75; q 0.1, n 3 -> 0.271; q 1e-6, n 4 -> ~4e-6
    got = tapas.unique_log_expected_count([0.5, 0.1, 1e-6], 2).numpy()
    np.testing.assert_allclose(np.exp(got[:1]), [0.75], rtol=1e-6)
    got = tapas.unique_log_expected_count([0.1, 1e-6], 3).numpy()
    np.testing.assert_allclose(np.exp(got), [0.271, 3e-6], rtol=1e-4)


def test_gradient_flows_to_query_and_weights_not_through_the_selection():
    q, w = tf.Variable(Q), tf.Variable(W)
    with tf.GradientTape() as tape:
        loss = tapas.tapas_sampled_softmax_loss(
            q, w, POSITIVES, SAMPLED, SAMPLED_LOG_Q, num_resampled=3, temperature=1.0
        )
    gq, gw = tape.gradient(loss, [q, w])
    assert np.all(np.isfinite(gq.numpy()))
    gw = tf.convert_to_tensor(gw).numpy()
    # Labels 2, 3, 4 were not kept (T = 1): no gradient reaches their vectors.
    assert np.all(gw[[2, 3, 4]] == 0) and np.any(gw[[0, 1]] != 0)
