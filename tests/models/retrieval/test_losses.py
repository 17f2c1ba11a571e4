"""Hand-derived values of the retrieval losses on 2x3 tensors.

Shared listwise set-up (temperature 1): queries q0 = [1, 0], q1 = [0, 1];
candidates c0 = [1, 0], c1 = [0, 1] (the in-batch positives) and c2 = [0.6, 0.8]
(one extra sampled negative). Logits q.c = [[1, 0, 0.6], [0, 1, 0.8]].
Row loss = logsumexp(row) - row[label].
"""

import math

import numpy as np
import tensorflow as tf

from models.retrieval import losses

Q = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
C = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32)
LOGITS = np.array([[1.0, 0.0, 0.6], [0.0, 1.0, 0.8]], np.float32)
# Pairwise / pointwise set-up: B = 2 anchors, K = 2 negatives each.
POS_COS = np.array([0.5, -0.2], np.float32)
NEG_COS = np.array([[0.1, -0.3], [0.4, 0.0]], np.float32)


def _close(value, expected, tol=1e-5):
    np.testing.assert_allclose(np.asarray(value), expected, rtol=tol, atol=tol)


def test_log_q_correct_subtracts_per_column():
    # [[1, 0, 0.6], [0, 1, 0.8]] - [0.5, 1.0, -1.0] = [[0.5, -1, 1.6], [-0.5, 0, 1.8]]
    out = losses.log_q_correct(LOGITS, [0.5, 1.0, -1.0])
    _close(out, [[0.5, -1.0, 1.6], [-0.5, 0.0, 1.8]])


def test_listwise_plain():
    # row 0: ln(e^1 + e^0 + e^0.6) - 1 = ln(5.540401) - 1 = 0.712067
    # row 1: ln(e^0 + e^1 + e^0.8) - 1 = ln(5.943823) - 1 = 0.782352
    # mean = 0.747210
    _close(losses.listwise_loss(Q, C, temperature=1.0), 0.747210)


def test_listwise_temperature_scales_logits():
    # temperature 0.5 doubles the logits: row 0 = ln(e^2 + 1 + e^1.2) - 2
    #   = ln(7.389056 + 1 + 3.320117) - 2 = ln(11.709173) - 2 = 0.460373
    # row 1 = ln(1 + e^2 + e^1.6) - 2 = ln(1 + 7.389056 + 4.953032) - 2 = 0.590924
    expected = (
        math.log(1 + math.exp(2) + math.exp(1.2))
        - 2
        + math.log(1 + math.exp(2) + math.exp(1.6))
        - 2
    ) / 2
    _close(losses.listwise_loss(Q, C, temperature=0.5), expected)
    _close(expected, (0.460373 + 0.590924) / 2)


def test_listwise_log_q():
    # log_q = [1, 0, 0.6]: row 0 -> [0, 0, 0]: ln 3 - 0 = 1.098612
    # row 1 -> [-1, 1, 0.2]: ln(e^-1 + e^1 + e^0.2) - 1 = ln(4.307564) - 1 = 0.460373
    # mean = 0.779492
    _close(losses.listwise_loss(Q, C, temperature=1.0, log_q=[1.0, 0.0, 0.6]), 0.779492)


def test_listwise_weighted_mean():
    # weights [1, 3]: (0.712067 + 3 * 0.782352) / 4 = 0.764781
    _close(losses.listwise_loss(Q, C, temperature=1.0, sample_weight=[1.0, 3.0]), 0.764781)


def test_remove_accidental_hits_keeps_the_label_column():
    # positives [5, 5], candidates [5, 5, 6]: (0, 1) and (1, 0) are the same item as
    # the row's positive outside the label column -> masked; diagonal and column 2 kept.
    out = losses.remove_accidental_hits(
        [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], tf.constant([5, 5]), tf.constant([5, 5, 6])
    ).numpy()
    m = losses.MASK_LOGIT
    _close(out, [[1.0, m, 3.0], [m, 5.0, 6.0]])


def test_listwise_accidental_hits_with_log_q():
    # ids: positives [7, 9], candidates [7, 9, 7]: (0, 2) is item 7 again -> masked.
    # With log_q [1, 0, 0.6]: row 0 -> [0, 0, masked]: ln 2 = 0.693147
    # row 1 unchanged: 0.460373; mean = 0.576760
    loss = losses.listwise_loss(
        Q,
        C,
        temperature=1.0,
        log_q=[1.0, 0.0, 0.6],
        positive_ids=tf.constant([7, 9], tf.int64),
        candidate_ids=tf.constant([7, 9, 7], tf.int64),
    )
    _close(loss, 0.576760)


def test_keep_hardest_negatives_selects_top_k_per_row():
    # row 0 (label col 0 = 3): negatives [1, 2, 0] -> top 2 = [2, 1]
    # row 1 (label col 1 = 4): negatives [5, -1, 6] -> top 2 = [6, 5]
    logits = tf.constant([[3.0, 1.0, 2.0, 0.0], [5.0, 4.0, -1.0, 6.0]])
    _close(losses.keep_hardest_negatives(logits, 2), [[3.0, 2.0, 1.0], [4.0, 6.0, 5.0]])
    # k larger than the N - 1 = 3 negatives keeps all of them.
    assert losses.keep_hardest_negatives(logits, 10).shape == (2, 4)


def test_listwise_hard_negatives():
    # k = 1: row 0 keeps [1, 0.6], row 1 keeps [1, 0.8] (label first)
    # row 0: ln(1 + e^(0.6 - 1)) = softplus(-0.4) = 0.513015
    # row 1: softplus(-0.2) = 0.598139; mean = 0.555577
    _close(losses.listwise_loss(Q, C, temperature=1.0, num_hard_negatives=1), 0.555577)


def test_mixed_log_q_per_source():
    # in-batch: B = 2, p = [0.1, 0.2] -> [ln 0.2, ln 0.4] = [-1.609438, -0.916291]
    # sampled: M = 4, q = [0.05, 0.5, 0.25] -> [ln 0.2, ln 2, ln 1] = [-1.609438, 0.693147, 0]
    out = losses.mixed_log_q([0.1, 0.2], 2, [0.05, 0.5, 0.25], 4)
    _close(out, [-1.609438, -0.916291, -1.609438, 0.693147, 0.0])


def test_pointwise_loss():
    # scale 2: logits pos [1.0, -0.4], neg [[0.2, -0.6], [0.8, 0.0]]
    # positives: softplus(-1.0) = 0.313262, softplus(0.4) = 0.913015
    # negatives: softplus(0.2) = 0.798139, softplus(-0.6) = 0.437488,
    #            softplus(0.8) = 1.171101, softplus(0) = 0.693147
    # mean over the 6 terms = 4.326152 / 6 = 0.721025
    _close(losses.pointwise_loss(POS_COS, NEG_COS, scale=2.0), 0.721025)


def test_pointwise_loss_is_finite_for_large_scales():
    # scale 1000: softplus(-500) ~ 0; softplus(100) = 100, softplus(-300) ~ 0;
    # row 1: softplus(200) = 200, softplus(400) = 400, softplus(0) = ln 2
    # mean = (100 + 200 + 400 + 0.693147) / 6 = 116.782191
    _close(losses.pointwise_loss(POS_COS, NEG_COS, scale=1000.0), 116.782191, tol=1e-4)


def test_triplet_hinge_loss():
    # margin 0.2: max(0, neg + 0.2 - pos):
    # row 0 (pos 0.5): 0.1 -> -0.2 -> 0; -0.3 -> -0.6 -> 0
    # row 1 (pos -0.2): 0.4 -> 0.8; 0.0 -> 0.4; mean = 1.2 / 4 = 0.3
    _close(losses.triplet_hinge_loss(POS_COS, NEG_COS), 0.3)
    # margin 0.5: row 0: 0.1, 0; row 1: 1.1, 0.7; mean = 1.9 / 4 = 0.475
    _close(losses.triplet_hinge_loss(POS_COS, NEG_COS, margin=0.5), 0.475)


def test_triplet_logistic_loss():
    # scale 2: softplus(2 * (neg - pos)):
    # row 0: 2 * (0.1 - 0.5) = -0.8 -> 0.371101; 2 * (-0.3 - 0.5) = -1.6 -> 0.183901
    # row 1: 2 * (0.4 + 0.2) = 1.2 -> 1.463282; 2 * (0.0 + 0.2) = 0.4 -> 0.913015
    # mean = 2.931299 / 4 = 0.732825
    _close(losses.triplet_logistic_loss(POS_COS, NEG_COS, scale=2.0), 0.732825)


# Sampled softmax: item vectors w0 = [1, 0], w1 = [0, 1], w2 = [0.5, 0.5], w3 = [-1, 0];
# queries Q; positives [0, 1]; a fixed draw of ids [1, 2, 3] with log expected counts
# [0, ln 2, 0]. Temperature 1. Sampled logits minus log-Q:
#   row 0 (q = [1, 0]): pos 1; w1: 0, w2: 0.5 - ln 2 = -0.193147, w3: -1
#   row 1 (q = [0, 1]): pos 1; w1: 1 (an accidental hit: it is the positive), w2: -0.193147, w3: 0
W = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [-1.0, 0.0]], np.float32)
POS_IDS = tf.constant([0, 1], tf.int64)
SAMPLED = tf.constant([1, 2, 3], tf.int64)
SAMPLED_LOG_Q = np.array([0.0, math.log(2.0), 0.0], np.float32)


def _sampled(**kwargs):
    return losses.sampled_softmax_loss(
        Q, W, POS_IDS, SAMPLED, SAMPLED_LOG_Q, temperature=1.0, **kwargs
    )


def test_sampled_softmax_with_hit_removal():
    # e^-0.193147 = e^0.5 / 2 = 0.824361
    # row 0: ln(e + 1 + 0.824361 + e^-1) - 1 = ln(4.910521) - 1 = 0.591380
    # row 1 (w1 masked): ln(e + 0.824361 + 1) - 1 = ln(4.542643) - 1 = 0.513509
    # mean = 0.552445
    _close(_sampled(), 0.552445)


def test_sampled_softmax_without_hit_removal():
    # row 1 keeps the hit: ln(2e + 0.824361 + 1) - 1 = ln(7.260925) - 1 = 0.982507
    # mean = (0.591380 + 0.982507) / 2 = 0.786944
    _close(_sampled(remove_hits=False), 0.786944)


def test_sampled_softmax_positive_log_q():
    # positive_log_q [ln 2, 0]: row 0 positive logit 1 - ln 2 = 0.306853 (e^0.306853 = e / 2)
    # row 0: ln(1.359141 + 1 + 0.824361 + 0.367879) - 0.306853 = 1.267337 - 0.306853 = 0.960484
    # mean = (0.960484 + 0.513509) / 2 = 0.736996
    _close(_sampled(positive_log_q=[math.log(2.0), 0.0]), 0.736996)


def test_sampled_softmax_adaptive_top_m():
    # m = 2, adaptive temperature 0.5: both rows keep the sampled logits [0, -0.193147]
    # (row 0 drops w3 = -1, row 1 drops the masked hit) and double everything:
    # [2, 0, -0.386294]: ln(e^2 + 1 + 0.679570) - 2 = ln(9.068626) - 2 = 0.204821
    _close(_sampled(adaptive_top_m=2, adaptive_temperature=0.5), 0.204821)


def test_losses_have_finite_gradients_with_masking():
    q = tf.Variable(Q)
    with tf.GradientTape() as tape:
        loss = losses.listwise_loss(
            q,
            C,
            temperature=0.01,
            positive_ids=tf.constant([7, 7]),
            candidate_ids=tf.constant([7, 7, 7]),
            num_hard_negatives=1,
        )
    grad = tape.gradient(loss, q)
    assert np.isfinite(loss.numpy()) and np.all(np.isfinite(grad.numpy()))


def test_listwise_runs_in_tf_function():
    @tf.function
    def traced(q, c):
        return losses.listwise_loss(q, c, temperature=1.0, num_hard_negatives=1)

    _close(traced(Q, C), 0.555577)
