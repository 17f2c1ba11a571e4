"""The request adapter both exports use: history fitting, raw-feature filling, L."""

import numpy as np
import pytest
import tensorflow as tf

from models.common import requests as R
from schemas import features as F


def _fit(items, genres, length):
    got = R.fit_history(tf.constant(items), tf.constant(genres), length)
    return [x.numpy().astype(str).tolist() for x in got]


def test_fit_history_keeps_the_most_recent_entries():
    h = [["a", "b", "c", ""], ["a", "", "", ""], ["", "", "", ""]]
    items, _ = _fit(h, h, 2)
    assert items == [["b", "c"], ["a", ""], ["", ""]]
    assert _fit(h, h, 5)[0][0] == ["a", "b", "c", "", ""]


def test_genres_follow_their_items_window_even_where_a_genre_is_empty():
    items, genres = _fit([["a", "b", "c", ""]], [["x", "", "z", ""]], 2)
    assert items == [["b", "c"]] and genres == [["", "z"]]


def test_genres_narrower_or_wider_than_the_items_are_aligned_to_them():
    # Genres missing at the end count as PAD; genres past the items' width are cut.
    assert _fit([["a", "b", "c"]], [["x"]], 3)[1] == [["x", "", ""]]
    assert _fit([["a", "b"]], [["x", "y", "z", "w"]], 3)[1] == [["x", "y", ""]]


def test_pad_inside_a_history_is_dropped_before_the_window_is_cut():
    # [a, PAD, b] keeps b, the most recent item, in a window of 2.
    assert _fit([["a", "", "b"]], [["x", "", "y"]], 2) == [[["a", "b"]], [["x", "y"]]]


def test_empty_width_history_gives_all_pad():
    empty = tf.zeros([2, 0], tf.string)
    items, genres = R.fit_history(empty, empty, 3)
    assert items.shape == (2, 3) and set(items.numpy().ravel()) == {b""}
    assert genres.shape == (2, 3)


def test_user_inputs_count_the_fitted_history():
    request = {
        F.USER_ID: tf.constant(["u1", "u2"]),
        F.AGE: tf.constant([30, -1], tf.int64),
        F.HISTORY_ITEM_IDS: tf.constant([["a", "b", "c"], ["d", "", ""]]),
        F.HISTORY_GENRES: tf.constant([["x", "y", "z"], ["w", "", ""]]),
    }
    out = R.user_inputs(request, 2)
    assert sorted(out) == sorted(
        [F.USER_ID, F.AGE, F.HISTORY_ITEM_IDS, F.HISTORY_GENRES, F.HISTORY_LENGTH_FEATURE]
    )
    np.testing.assert_array_equal(out[F.HISTORY_LENGTH_FEATURE].numpy(), [2, 1])
    assert out[F.HISTORY_ITEM_IDS].numpy().astype(str).tolist() == [["b", "c"], ["d", ""]]


RAW_SPEC = {
    F.USER_ID: tf.io.FixedLenFeature([], tf.string),
    F.GENDER: tf.io.FixedLenFeature([], tf.string),
    F.AGE: tf.io.FixedLenFeature([], tf.int64),
    F.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
    F.HISTORY_BUCKET: tf.io.FixedLenFeature([], tf.string),
    F.HISTORY_ITEM_IDS: tf.io.FixedLenFeature([3], tf.string),
    F.GENRES: tf.io.VarLenFeature(tf.string),
    "some_float": tf.io.FixedLenFeature([], tf.float32),
}


def test_fill_raw_features_shapes_given_values_and_defaults_the_rest():
    given = {F.USER_ID: tf.constant(["u1", "u2"]), "not_in_spec": tf.constant([1, 2])}
    out = R.fill_raw_features(given, RAW_SPEC, tf.constant(2))
    assert sorted(out) == sorted(RAW_SPEC)
    assert out[F.USER_ID].numpy().astype(str).tolist() == [["u1"], ["u2"]]
    assert out[F.GENDER].numpy().astype(str).tolist() == [[F.UNKNOWN]] * 2
    assert out[F.AGE].numpy().tolist() == [[F.MISSING_INT]] * 2
    assert out[F.TIMESTAMP].numpy().tolist() == [[0]] * 2
    assert out[F.HISTORY_BUCKET].numpy().astype(str).tolist() == [["0"]] * 2
    assert out[F.HISTORY_ITEM_IDS].numpy().astype(str).tolist() == [[F.PAD] * 3] * 2
    assert out["some_float"].numpy().tolist() == [[0.0]] * 2
    genres = out[F.GENRES]
    assert isinstance(genres, tf.SparseTensor) and genres.dense_shape.numpy().tolist() == [2, 0]


def test_history_length_is_read_from_the_transform_spec():
    assert R.history_length(RAW_SPEC) == 3
    with pytest.raises(ValueError, match=F.HISTORY_ITEM_IDS):
        R.history_length({F.HISTORY_ITEM_IDS: tf.io.VarLenFeature(tf.string)})
