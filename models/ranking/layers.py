"""DIN building blocks: Dice, PReLU, an MLP, the local activation unit and mean pooling.

Shapes: B batch, N candidates per row (optional axis), L history positions, d widths.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from models.ranking.config import DICE, PRELU

_NEG_INF = -1e9


class Dice(tf_keras.layers.Layer):
    """Data-adaptive activation (DIN paper, eq. 8), with an alpha per unit.

    y = p(s) * s + (1 - p(s)) * alpha * s, with p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + eps)).
    In training E[s] and Var[s] (biased) are the batch statistics of each unit over every
    axis but the last (over the valid entries when a mask is given); at inference they are
    moving averages updated in training: moving = momentum * moving + (1 - momentum) * batch.
    """

    def __init__(self, epsilon: float = 1e-8, momentum: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        self.epsilon, self.momentum = epsilon, momentum

    def build(self, input_shape):
        units = int(input_shape[-1])
        self.alpha = self.add_weight("alpha", [units], initializer="zeros")
        self.moving_mean = self.add_weight(
            "moving_mean", [units], initializer="zeros", trainable=False
        )
        self.moving_variance = self.add_weight(
            "moving_variance", [units], initializer="ones", trainable=False
        )
        super().build(input_shape)

    def call(self, inputs, training=None, mask=None):
        """Args: inputs [..., units]; mask [...] (1 = valid), optional.

        Returns:
            [..., units].
        """
        if training:
            weights = _row_weights(inputs, mask)
            out, mean, variance = _dice_batch(inputs, weights, self.alpha.value(), self.epsilon)
            self._update_moving(mean, variance, inputs, mask)
            return out
        # p x + (1 - p) alpha x = x (alpha + (1 - alpha) p), with the normalisation folded
        # into one scale and shift per unit: 6 passes over the activations instead of 8
        # (the attention unit's [B, N, L, h] tensors dominate the ranker's serving time).
        scale = tf.math.rsqrt(self.moving_variance + self.epsilon)
        p = tf.sigmoid(inputs * scale - self.moving_mean * scale)
        return inputs * (self.alpha + (1.0 - self.alpha) * p)

    def _update_moving(self, mean, variance, x, mask):
        keep = self.momentum
        valid = tf.size(x) > 0 if mask is None else tf.reduce_sum(tf.cast(mask, x.dtype)) > 0
        new_mean = keep * self.moving_mean + (1 - keep) * mean
        new_var = keep * self.moving_variance + (1 - keep) * variance
        self.moving_mean.assign(tf.where(valid, new_mean, self.moving_mean))
        self.moving_variance.assign(tf.where(valid, new_var, self.moving_variance))

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "momentum": self.momentum}


def _row_weights(x, mask):
    """[rows, 1] weights of x's rows (all axes but the last flattened): the mask or ones."""
    if mask is None:
        return tf.ones([tf.size(x) // tf.shape(x)[-1], 1], x.dtype)
    return tf.reshape(tf.cast(mask, x.dtype), [-1, 1])


@tf.custom_gradient
def _dice_batch(x, w, alpha, epsilon):
    """Dice on batch statistics: (y, mean, variance); one fused backward pass.

    Per unit, over the rows r (weights w_r, n = sum w): mean m = sum w x / n,
    variance v = sum w (x - m)^2 / n, s = rsqrt(v + eps), z = (x - m) s, p = sigmoid(z),
    y = x (alpha + (1 - alpha) p). Given g = dL/dy, and h = g x (1 - alpha) p (1 - p)
    (= dL/dz), differentiating through m and v as batch normalisation does gives

        dL/dx = g (alpha + (1 - alpha) p) + s h - (s w / n) (sum h + z sum h z),
        dL/dalpha = sum g x (1 - p),

    (mean and variance are returned for the moving averages, without gradient). Fewer
    passes over the activations than TF's autodiff of the same forward: with the
    attention unit's expand_dims, a DIN training step on ML-100K took ~11% less time
    (medians of 120 steps, three interleaved runs). tests/models/ranking/test_layers.py
    checks it against autodiff.
    """
    shape = tf.shape(x)
    x2 = tf.reshape(x, [-1, shape[-1]])
    n = tf.reduce_sum(w)
    mean = tf.math.divide_no_nan(tf.reduce_sum(w * x2, 0), n)
    centred = x2 - mean
    variance = tf.math.divide_no_nan(tf.reduce_sum(w * tf.square(centred), 0), n)
    scale = tf.math.rsqrt(variance + epsilon)
    z = centred * scale
    p = tf.sigmoid(z)
    gate = alpha + (1.0 - alpha) * p  # dy/dx at fixed statistics; the backward reuses it
    y = tf.reshape(x2 * gate, shape)

    def grad(dy, dmean, dvariance):
        del dmean, dvariance  # the moving averages are not differentiated
        g = tf.reshape(dy, tf.shape(x2))
        gx = g * x2
        h = gx * ((1.0 - alpha) * p * (1.0 - p))
        per_unit = tf.math.divide_no_nan(scale, n)
        correction = w * per_unit * (tf.reduce_sum(h, 0) + z * tf.reduce_sum(h * z, 0))
        dx = g * gate + scale * h - correction
        dalpha = tf.reduce_sum(gx * (1.0 - p), 0)
        return tf.reshape(dx, shape), None, dalpha, None

    return (y, tf.stop_gradient(mean), tf.stop_gradient(variance)), grad


class PReLU(tf_keras.layers.Layer):
    """y = max(0, x) + alpha * min(0, x), one alpha per unit (last axis), any input rank."""

    def __init__(self, alpha_init: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.alpha_init = alpha_init

    def build(self, input_shape):
        self.alpha = self.add_weight(
            "alpha",
            [int(input_shape[-1])],
            initializer=tf_keras.initializers.Constant(self.alpha_init),
        )
        super().build(input_shape)

    def call(self, inputs, training=None, mask=None):
        del training, mask
        return tf.nn.relu(inputs) - self.alpha * tf.nn.relu(-inputs)

    def get_config(self):
        return {**super().get_config(), "alpha_init": self.alpha_init}


class MLP(tf_keras.layers.Layer):
    """Dense -> Dice/PReLU (-> dropout) per hidden size; the activation sees the mask."""

    def __init__(
        self,
        units: tuple[int, ...] | list[int],
        activation: str = DICE,
        epsilon: float = 1e-8,
        momentum: float = 0.99,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if activation not in (DICE, PRELU):
            raise ValueError(f"activation must be {DICE!r} or {PRELU!r}, got {activation!r}")
        self.units, self.activation = tuple(units), activation
        self.epsilon, self.momentum, self.dropout = epsilon, momentum, dropout
        self.dense = [tf_keras.layers.Dense(u, name=f"dense{i}") for i, u in enumerate(units)]
        self.acts = [
            Dice(epsilon, momentum, name=f"dice{i}")
            if activation == DICE
            else PReLU(name=f"prelu{i}")
            for i in range(len(self.units))
        ]
        self.drop = tf_keras.layers.Dropout(dropout) if dropout else None

    def call(self, inputs, training=None, mask=None):
        """Args: inputs [..., d_in]; mask [...] for Dice's statistics. Returns [..., units[-1]]."""
        x = inputs
        for dense, act in zip(self.dense, self.acts, strict=True):
            x = act(dense(x), training=training, mask=mask)
            if self.drop is not None:
                x = self.drop(x, training=training)
        return x

    def get_config(self):
        return {
            **super().get_config(),
            "units": list(self.units),
            "activation": self.activation,
            "epsilon": self.epsilon,
            "momentum": self.momentum,
            "dropout": self.dropout,
        }


class LocalActivationUnit(tf_keras.layers.Layer):
    """DIN's attention: one weight per history position, from [q, k, q - k, q * k] via an MLP.

    Padded positions get weight 0. Without softmax (the default, as in the DIN paper) the
    weights are unnormalised; with softmax they sum to 1 over the valid positions. A history
    with no valid position pools to zeros.

    The first layer's kernel W = [Wq; Wk; Wd; Wp] ([4d, h]) acts on the concatenation, which
    is computed without materialising it: q (Wq + Wd) once per candidate, k (Wk - Wd) once
    per history position, and only (q * k) Wp per (candidate, position) pair.
    """

    def __init__(
        self,
        units: tuple[int, ...] | list[int] = (80, 40),
        activation: str = DICE,
        softmax: bool = False,
        epsilon: float = 1e-8,
        momentum: float = 0.99,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units, self.activation, self.softmax = tuple(units), activation, softmax
        self.epsilon, self.momentum = epsilon, momentum
        self.mlp = MLP(units, activation, epsilon, momentum, name="mlp")
        self.out = tf_keras.layers.Dense(1, name="weight")

    def build(self, input_shape):
        d = int(input_shape[1][-1])
        self.mlp.dense[0].build(tf.TensorShape([None, 4 * d]))
        super().build(input_shape)

    def _first_layer(self, q, keys):
        """Pre-activations [B, N, L, h] of the first layer on [q, k, q - k, q * k]."""
        dense = self.mlp.dense[0]
        wq, wk, wd, wp = tf.split(dense.kernel, 4, axis=0)  # each [d, h]
        per_query = tf.einsum("bnd,dh->bnh", q, wq + wd)
        per_key = tf.einsum("bld,dh->blh", keys, wk - wd)
        # expand_dims, not [:, tf.newaxis]: its gradient is a reshape, a strided slice's
        # gradient (StridedSliceGrad) copies into a new tensor (~6% of a training step).
        pairs = tf.einsum("bnld,dh->bnlh", tf.expand_dims(q, 2) * tf.expand_dims(keys, 1), wp)
        return pairs + tf.expand_dims(per_query, 2) + tf.expand_dims(per_key, 1) + dense.bias

    def call(self, inputs, training=None):
        """Pools the history for each query.

        Args:
            inputs: (query [B, d] or [B, N, d], keys [B, L, d], mask [B, L] with 1 = valid).

        Returns:
            (pooled [B, d] or [B, N, d], weights [B, L] or [B, N, L]).
        """
        query, keys, mask = inputs
        single = query.shape.rank == 2
        q = tf.expand_dims(query, 1) if single else query  # [B, N, d]
        shape = tf.stack([tf.shape(q)[0], tf.shape(q)[1], tf.shape(keys)[1]])
        m = tf.broadcast_to(tf.expand_dims(tf.cast(mask, q.dtype), 1), shape)  # [B, N, L]
        x = self.mlp.acts[0](self._first_layer(q, keys), training=training, mask=m)
        for dense, act in zip(self.mlp.dense[1:], self.mlp.acts[1:], strict=True):
            x = act(dense(x), training=training, mask=m)
        score = tf.squeeze(self.out(x), -1)  # [B, N, L]
        if self.softmax:
            score = tf.nn.softmax(tf.where(m > 0, score, _NEG_INF), axis=-1)
        weights = score * m
        pooled = tf.einsum("bnl,bld->bnd", weights, keys)
        if single:
            return tf.squeeze(pooled, 1), tf.squeeze(weights, 1)
        return pooled, weights

    def get_config(self):
        return {
            **super().get_config(),
            "units": list(self.units),
            "activation": self.activation,
            "softmax": self.softmax,
            "epsilon": self.epsilon,
            "momentum": self.momentum,
        }


class MaskedMeanPooling(tf_keras.layers.Layer):
    """The base DNN's pooling: the mean of the valid history vectors (zeros if none)."""

    def call(self, inputs):
        """Args: inputs (keys [B, L, d], mask [B, L]). Returns [B, d]."""
        keys, mask = inputs
        m = tf.cast(mask, keys.dtype)[..., tf.newaxis]
        return tf.reduce_sum(keys * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)

    def get_config(self):
        return super().get_config()
