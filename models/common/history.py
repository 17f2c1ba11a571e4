"""Positions in a behaviour history, shared by the two-tower's sequence encoder and DIN.

A history arrives oldest first and right-padded: `[h_0, ..., h_{n-1}, pad, ...]`, with a
mask [B, L] that is 1 on the valid prefix. *Recency* counts back from the most recent
item (n - 1 - i: 0 for the most recent), so that "the last item" means the same thing
whatever the history's length.
"""

from __future__ import annotations

import tensorflow as tf


def recency_positions(mask: tf.Tensor) -> tf.Tensor:
    """[B, L] recency index of each valid position (0 = most recent), -1 on padding.

    mask [B, L] is 1 on the valid prefix of each row (right padding).
    """
    mask = tf.cast(mask, tf.int64)
    length = tf.reduce_sum(mask, axis=1, keepdims=True)
    index = tf.range(tf.shape(mask, out_type=tf.int64)[1])[tf.newaxis, :]
    return tf.where(mask > 0, length - 1 - index, -1)


def last_state(states: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """states [B, L, D] at each row's last valid position -> [B, D]; empty rows -> 0."""
    length = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    picked = tf.gather(states, tf.maximum(length - 1, 0), batch_dims=1)
    return picked * tf.cast(length > 0, states.dtype)[:, tf.newaxis]
