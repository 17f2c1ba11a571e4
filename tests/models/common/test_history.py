"""History positions: recency counted back from the most recent item, the last state."""

import numpy as np
import tensorflow as tf

from models.common.history import last_state, recency_positions

MASK = tf.constant([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])


def test_recency_positions_count_back_from_the_most_recent_item():
    # Row 0 holds 3 items (oldest first): the newest (index 2) has recency 0.
    assert recency_positions(MASK).numpy().tolist() == [
        [2, 1, 0, -1],
        [0, -1, -1, -1],
        [-1, -1, -1, -1],
    ]


def test_last_state_picks_the_most_recent_valid_position_and_zero_for_empty_rows():
    states = tf.reshape(tf.range(3 * 4 * 2, dtype=tf.float32), [3, 4, 2])
    out = last_state(states, MASK).numpy()
    np.testing.assert_array_equal(out[0], states[0, 2])  # length 3 -> index 2
    np.testing.assert_array_equal(out[1], states[1, 0])
    np.testing.assert_array_equal(out[2], [0.0, 0.0])
