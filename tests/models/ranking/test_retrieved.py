"""Retrieved ranker negatives: the candidate table and the swap, on hand-built batches."""

import numpy as np
import pytest
import tensorflow as tf

from models.ranking import retrieved as R
from schemas import features as F

T = F.transformed_name


def _batch(users, items, genres, years, events, labels):
    return {
        T(F.USER_ID): tf.constant(users, tf.int64),
        T(F.ITEM_ID): tf.constant(items, tf.int64),
        T(F.PRIMARY_GENRE): tf.constant(genres, tf.int64),
        F.YEAR_NORMALIZED: tf.constant(years, tf.float32),
        F.EVENT: tf.constant(events, tf.int64),
        F.LABEL: tf.constant(labels, tf.int64),
    }


def test_candidate_table_keeps_each_items_first_seen_features():
    b1 = {
        R.ITEM: np.array([2, 0, 2]),
        R.GENRE: np.array([5, 6, 7]),
        R.YEAR: np.array([0.2, 0.0, 0.9]),
    }
    b2 = {R.ITEM: np.array([3, 0]), R.GENRE: np.array([8, 9]), R.YEAR: np.array([0.3, 0.5])}
    table = R.candidate_table([b1, b2], 5)
    np.testing.assert_array_equal(table.known, [True, False, True, True, False])
    np.testing.assert_array_equal(table.genre[[0, 2, 3]], [6, 5, 8])  # item 2: row 0, not row 2
    np.testing.assert_allclose(table.year[[0, 2, 3]], [0.0, 0.2, 0.3])


def test_candidate_table_names_an_index_outside_the_vocabulary():
    with pytest.raises(ValueError, match="index 7 outside"):
        R.candidate_table(
            [{R.ITEM: np.array([1, 7]), R.GENRE: np.zeros(2), R.YEAR: np.zeros(2)}], 5
        )


def _table():
    # items 0..4; item 4 never seen as a training candidate
    return R.CandidateTable(
        genre=np.array([10, 11, 12, 13, 14], np.int64),
        year=np.array([0.0, 0.1, 0.2, 0.3, 0.4], np.float32),
        known=np.array([True, True, True, True, False]),
    )


def test_share_one_swaps_every_sampled_negative_of_a_user_with_a_list():
    # user 0's list is [3] only, so its sampled negative must become item 3 (genre 13, .3)
    lists = tf.constant([[3, -1], [-1, -1]], tf.int64)
    batch = _batch(
        users=[0, 0, 0, 1],
        items=[1, 2, 0, 2],
        genres=[11, 12, 10, 12],
        years=[0.1, 0.2, 0.0, 0.2],
        events=[1, 1, 0, 0],  # a positive, a logged low rating, a sampled negative, user 1's
        labels=[1, 0, 0, 0],
    )
    out = R.swap_in_retrieved(batch, lists, _table(), 1.0, tf.constant([0, 0]))
    np.testing.assert_array_equal(out[T(F.ITEM_ID)].numpy(), [1, 2, 3, 2])
    np.testing.assert_array_equal(out[T(F.PRIMARY_GENRE)].numpy(), [11, 12, 13, 12])
    np.testing.assert_allclose(out[F.YEAR_NORMALIZED].numpy(), [0.1, 0.2, 0.3, 0.2])
    # user and label untouched
    np.testing.assert_array_equal(out[F.LABEL].numpy(), [1, 0, 0, 0])
    np.testing.assert_array_equal(out[T(F.USER_ID)].numpy(), [0, 0, 0, 1])


def test_share_zero_and_unknown_items_swap_nothing():
    batch = _batch([0, 0], [1, 2], [11, 12], [0.1, 0.2], [0, 0], [0, 0])
    lists = tf.constant([[3, 1]], tf.int64)
    out = R.swap_in_retrieved(batch, lists, _table(), 0.0, tf.constant([0, 0]))
    np.testing.assert_array_equal(out[T(F.ITEM_ID)].numpy(), [1, 2])
    only_unknown = tf.constant([[4]], tf.int64)  # item 4 has no candidate features
    out = R.swap_in_retrieved(batch, only_unknown, _table(), 1.0, tf.constant([0, 0]))
    np.testing.assert_array_equal(out[T(F.ITEM_ID)].numpy(), [1, 2])


def test_draws_are_uniform_over_the_list_and_the_share_holds():
    n = 20000
    lists = tf.constant([[0, 1, 2, 3]], tf.int64)
    batch = _batch([0] * n, [1] * n, [11] * n, [0.1] * n, [0] * n, [0] * n)
    out = R.swap_in_retrieved(batch, lists, _table(), 0.5, tf.constant([7, 3]))
    items = out[T(F.ITEM_ID)].numpy()
    # unswapped rows keep item 1; a swap draws item 1 too with probability 1/4
    counts = np.bincount(items, minlength=4) / n
    np.testing.assert_allclose(counts, [0.125, 0.5 + 0.125, 0.125, 0.125], atol=0.015)
    again = R.swap_in_retrieved(batch, lists, _table(), 0.5, tf.constant([7, 3]))
    np.testing.assert_array_equal(again[T(F.ITEM_ID)].numpy(), items)  # stateless


def test_training_data_swaps_the_sampled_negatives_of_listed_users(tiny_data, tmp_path):
    import dataclasses

    import tensorflow_transform as tft

    from models.common.data import vocab_sizes
    from models.ranking import trainer
    from models.ranking.config import RankingConfig

    tft_output = tft.TFTransformOutput(tiny_data.transform_graph)
    users = tft_output.vocabulary_by_name(F.USER_VOCAB)
    items = [i.decode() for i in tft_output.vocabulary_by_name(F.ITEM_VOCAB)[:3]]
    listed = [u.decode() for u in users[::2]]  # every other user has a list
    path = tmp_path / "retrieved.tsv"
    path.write_text("".join(f"{u}\t{' '.join(items)}\n" for u in listed))
    base = RankingConfig(batch_size=256, seed=3)
    files = [tiny_data.raw("train")]
    sizes = vocab_sizes(tft_output)

    def rows(config):
        data, report = trainer.training_data(config, tft_output, files, sizes, repeat=False)
        cols = {k: [] for k in (T(F.USER_ID), T(F.ITEM_ID), F.EVENT)}
        for batch in data:
            for k in cols:
                cols[k].append(batch[k].numpy().reshape(-1))
        return {k: np.concatenate(v) for k, v in cols.items()}, report

    config = dataclasses.replace(
        base, retrieved_negatives_path=str(path), retrieved_negative_share=1.0
    )
    got, report = rows(config)
    assert report["users_with_a_list"] == len(listed)
    assert report["mean_list_length"] == 3
    in_list = np.isin(got[T(F.ITEM_ID)], [0, 1, 2])  # the 3 items' transformed indices
    listed_user = np.isin(got[T(F.USER_ID)], np.arange(0, len(users), 2))
    sampled = got[F.EVENT] == 0
    assert (sampled & listed_user).sum() > 50
    assert in_list[sampled & listed_user].all()  # every one swapped (all 3 are candidates)
    plain, none = rows(base)
    assert none is None
    plain_sampled = (plain[F.EVENT] == 0) & np.isin(
        plain[T(F.USER_ID)], np.arange(0, len(users), 2)
    )
    assert (
        in_list[sampled & listed_user].mean()
        > 2 * np.isin(plain[T(F.ITEM_ID)], [0, 1, 2])[plain_sampled].mean()
    )
    # logged events keep their items: the same multiset as without the file
    logged, plain_logged = got[F.EVENT] == 1, plain[F.EVENT] == 1
    np.testing.assert_array_equal(
        np.sort(got[T(F.ITEM_ID)][logged]), np.sort(plain[T(F.ITEM_ID)][plain_logged])
    )
