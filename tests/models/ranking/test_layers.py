"""Dice (hand-derived), PReLU, the local activation unit's masking and mean pooling."""

import numpy as np
import pytest
import tensorflow as tf

from models.ranking import layers as L

S1, S13, SM43 = 0.731059, 0.582570, 0.208609  # sigmoid(1), sigmoid(1/3), sigmoid(-4/3)


def dice(alpha=(0.25, 0.5), epsilon=1.0 / 3.0, momentum=0.9):
    layer = L.Dice(epsilon=epsilon, momentum=momentum)
    layer.build(tf.TensorShape([None, 2]))
    layer.alpha.assign(alpha)
    return layer


def test_dice_training_uses_batch_statistics():
    # y = x * (p + (1 - p) * alpha), p = sigmoid((x - mean) / sqrt(var + eps)); eps = 1/3.
    # Column 0: x = (-1, 0, 1), mean 0, biased var 2/3, var + eps = 1 -> z = (-1, 0, 1).
    #   alpha 0.25: -1 * (0.268941 + 0.731059 * 0.25) = -0.451706;  0 -> 0;
    #               1 * (0.731059 + 0.268941 * 0.25) = 0.798294.
    # Column 1: x = (4, 2, -3), mean 1, deviations (3, 1, -4), var 26/3, var + eps = 9
    #   -> std 3, z = (1, 1/3, -4/3), p = (0.731059, 0.582570, 0.208609). alpha 0.5:
    #   4 * (0.731059 + 0.268941 * 0.5) = 3.462117;  2 * (0.582570 + 0.417430 * 0.5) = 1.582570;
    #   -3 * (0.208609 + 0.791391 * 0.5) = -1.812913.
    layer = dice()
    x = tf.constant([[-1.0, 4.0], [0.0, 2.0], [1.0, -3.0]])
    expected = [[-0.451706, 3.462117], [0.0, 1.582570], [0.798294, -1.812913]]
    np.testing.assert_allclose(layer(x, training=True), expected, atol=1e-5)
    # Moving averages (momentum 0.9) from mean 0 / var 1: mean 0.1 * (0, 1) = (0, 0.1);
    # var 0.9 * 1 + 0.1 * (2/3, 26/3) = (0.966667, 1.766667).
    np.testing.assert_allclose(layer.moving_mean, [0.0, 0.1], atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance, [0.966667, 1.766667], atol=1e-5)


def test_dice_inference_uses_moving_statistics():
    # Moving mean (1, 2), moving var (3, 8), eps 1: z = (x - 1) / 2 and (x - 2) / 3.
    # Column 0: x = (3, 1, -1) -> z = (1, 0, -1), alpha 0.25:
    #   3 * 0.798294 = 2.394882;  1 * (0.5 + 0.5 * 0.25) = 0.625;  -0.451706 (as above).
    # Column 1: x = (2, 8, -1) -> z = (0, 2, -1), alpha 0.5, sigmoid(2) = 0.880797:
    #   2 * (0.5 + 0.25) = 1.5;  8 * (0.880797 + 0.119203 * 0.5) = 7.523188;
    #   -1 * (0.268941 + 0.731059 * 0.5) = -0.634471.
    layer = dice(epsilon=1.0)
    layer.moving_mean.assign([1.0, 2.0])
    layer.moving_variance.assign([3.0, 8.0])
    x = tf.constant([[3.0, 2.0], [1.0, 8.0], [-1.0, -1.0]])
    expected = [[2.394882, 1.5], [0.625, 7.523188], [-0.451706, -0.634471]]
    np.testing.assert_allclose(layer(x, training=False), expected, atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean, [1.0, 2.0])  # inference leaves them alone


def test_dice_mask_excludes_entries_from_batch_statistics():
    layer = dice()
    x = tf.constant([[-1.0, 4.0], [0.0, 2.0], [1.0, -3.0], [50.0, -70.0]])
    out = layer(x, training=True, mask=tf.constant([1.0, 1.0, 1.0, 0.0]))
    np.testing.assert_allclose(out[:3], dice()(x[:3], training=True), atol=1e-5)


def test_dice_training_gradient_by_hand():
    # One unit, rows x = (-1, 1), eps 0: mean 0, var 1, z = (-1, 1), p = (0.268941, 0.731059).
    # With two rows, moving either x shifts the mean and the std together so that z stays
    # (-1, 1): y1 = x1 (alpha + (1 - alpha) p1) has dy1/dx1 = 0.5 + 0.5 * 0.268941
    # = 0.634471 and dy1/dx2 = 0. dy1/dalpha = x1 (1 - p1) = -0.731059.
    layer = L.Dice(epsilon=0.0)
    layer.build(tf.TensorShape([None, 1]))
    layer.alpha.assign([0.5])
    x = tf.constant([[-1.0], [1.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y1 = layer(x, training=True)[0, 0]
    dx, dalpha = tape.gradient(y1, [x, layer.alpha])
    np.testing.assert_allclose(dx.numpy().ravel(), [0.634471, 0.0], atol=1e-6)
    np.testing.assert_allclose(dalpha.numpy(), [-0.731059], atol=1e-6)


def _dice_by_autodiff(x, mask, alpha, epsilon):
    """The training forward in plain ops, for TF's autodiff to differentiate."""
    x2 = tf.reshape(x, [-1, x.shape[-1]])
    w = tf.reshape(mask, [-1, 1])
    n = tf.reduce_sum(w)
    mean = tf.math.divide_no_nan(tf.reduce_sum(w * x2, 0), n)
    var = tf.math.divide_no_nan(tf.reduce_sum(w * tf.square(x2 - mean), 0), n)
    p = tf.sigmoid((x2 - mean) * tf.math.rsqrt(var + epsilon))
    return tf.reshape(x2 * (alpha + (1.0 - alpha) * p), tf.shape(x))


@pytest.mark.parametrize("masked", [False, True])
def test_dice_fused_gradient_matches_autodiff(masked):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(4, 3, 5, 6)) * 2.0 + 1.0, tf.float32)
    mask = (rng.random((4, 3, 5)) < 0.6) if masked else np.ones((4, 3, 5))
    mask = tf.constant(mask, tf.float32)
    upstream = tf.constant(rng.normal(size=(4, 3, 5, 6)), tf.float32)
    layer = L.Dice(epsilon=1e-3)
    layer.build(tf.TensorShape([None, 6]))
    layer.alpha.assign(rng.uniform(-0.5, 0.8, size=6))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        fused = layer(x, training=True, mask=mask if masked else None)
        reference = _dice_by_autodiff(x, mask, layer.alpha, 1e-3)
        loss_fused = tf.reduce_sum(fused * upstream)
        loss_reference = tf.reduce_sum(reference * upstream)
    np.testing.assert_allclose(fused, reference, rtol=1e-5, atol=1e-5)
    for got, want in zip(
        tape.gradient(loss_fused, [x, layer.alpha]),
        tape.gradient(loss_reference, [x, layer.alpha]),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_dice_all_masked_batch_has_finite_gradients():
    layer = L.Dice()
    x = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(layer(x, training=True, mask=tf.zeros([2])))
    dx, dalpha = tape.gradient(total, [x, layer.alpha])
    assert np.isfinite(dx.numpy()).all() and np.isfinite(dalpha.numpy()).all()
    np.testing.assert_allclose(layer.moving_mean, [0.0, 0.0])  # no valid entry: unchanged


def test_prelu():
    layer = L.PReLU(alpha_init=0.1)
    out = layer(tf.constant([[[-2.0, 3.0]]]))  # any rank; one alpha per unit
    np.testing.assert_allclose(out, [[[-0.2, 3.0]]], atol=1e-6)
    assert layer.alpha.shape == (2,)


def make_unit(softmax=False, activation="dice"):
    tf.random.set_seed(0)
    return L.LocalActivationUnit((8, 4), activation=activation, softmax=softmax)


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    query = tf.constant(rng.normal(size=(3, 5)), tf.float32)
    keys = tf.constant(rng.normal(size=(3, 4, 5)), tf.float32)
    mask = tf.constant([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], tf.float32)  # lengths 3, 1, 0
    return query, keys, mask


@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_padded_positions_never_change_the_output(softmax, training):
    unit = make_unit(softmax)
    query, keys, mask = inputs()
    pooled, weights = unit((query, keys, mask), training=training)
    noise = tf.constant(np.random.default_rng(1).normal(0, 100, size=keys.shape), tf.float32)
    changed = keys + noise * (1.0 - mask[..., None])
    pooled2, weights2 = unit((query, changed, mask), training=training)
    np.testing.assert_allclose(pooled, pooled2, atol=1e-5)
    np.testing.assert_allclose(weights, weights2, atol=1e-6)
    np.testing.assert_array_equal(weights.numpy()[mask.numpy() == 0], 0.0)
    # The length-0 history pools to zeros, without NaN.
    np.testing.assert_array_equal(pooled[2], np.zeros(5))
    assert np.isfinite(pooled.numpy()).all()


def test_softmax_sums_to_one_over_valid_positions():
    _, weights = make_unit(softmax=True)(inputs(), training=False)
    np.testing.assert_allclose(tf.reduce_sum(weights, -1), [1.0, 1.0, 0.0], atol=1e-6)
    _, raw = make_unit(softmax=False)(inputs(), training=False)
    assert not np.allclose(tf.reduce_sum(raw, -1)[:2], 1.0)  # the default is not normalised


@pytest.mark.parametrize("activation", ["dice", "prelu"])
def test_unit_equals_an_mlp_on_the_explicit_concatenation(activation):
    unit = make_unit(activation=activation)
    query, keys, mask = inputs()
    pooled, weights = unit((query, keys, mask), training=False)
    q = tf.broadcast_to(query[:, None], keys.shape)
    x = tf.concat([q, keys, q - keys, q * keys], -1)  # [B, L, 4d]
    for dense, act in zip(unit.mlp.dense, unit.mlp.acts, strict=True):
        x = act(dense(x), training=False)
    expected_w = tf.squeeze(unit.out(x), -1) * mask
    np.testing.assert_allclose(weights, expected_w, atol=1e-5)
    np.testing.assert_allclose(pooled, tf.einsum("bl,bld->bd", expected_w, keys), atol=1e-5)


def test_candidate_axis_matches_one_query_at_a_time():
    unit = make_unit()
    query, keys, mask = inputs()
    queries = tf.stack([query, 2.0 * query], axis=1)  # [B, N=2, d]
    pooled, weights = unit((queries, keys, mask), training=False)
    for n in range(2):
        p, w = unit((queries[:, n], keys, mask), training=False)
        np.testing.assert_allclose(pooled[:, n], p, atol=1e-5)
        np.testing.assert_allclose(weights[:, n], w, atol=1e-6)


def test_masked_mean_pooling():
    keys = tf.constant(
        [[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 5.0], [1.0, 1.0], [0.0, 9.0]]]
    )
    mask = tf.constant([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(L.MaskedMeanPooling()((keys, mask)), [[2.0, 3.0], [0.0, 0.0]])


@pytest.mark.parametrize(
    "layer",
    [
        L.Dice(epsilon=1e-3, momentum=0.9),
        L.PReLU(alpha_init=0.1),
        L.MLP((4, 2), activation="prelu", dropout=0.1),
        L.LocalActivationUnit((6, 3), activation="prelu", softmax=True),
        L.MaskedMeanPooling(),
    ],
)
def test_layers_round_trip_their_config(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
