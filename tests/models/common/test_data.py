"""The trainers' input pipeline over Transform's output, checked against a plain read, and
over the raw examples (the default), checked against Transform's Beam output."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from models.common import data
from models.retrieval.trainer import positive_rows
from schemas import features as F

ITEM, LABEL, GENRES = F.transformed_name(F.ITEM_ID), F.LABEL, F.transformed_name(F.GENRES)


@pytest.fixture(scope="module")
def transformed(tiny_data):
    """(train glob, TFTransformOutput, the train split parsed record by record in file order)."""
    tft_output = tft.TFTransformOutput(tiny_data.transform_graph)
    spec = tft_output.transformed_feature_spec()
    pattern = tiny_data.transformed("train")
    records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern)), "GZIP")
    rows = [tf.io.parse_single_example(r, spec) for r in records]
    return pattern, tft_output, rows


def _column(batches, name):
    return np.concatenate([b[name].numpy().reshape(-1) for b in batches])


def test_one_unshuffled_pass_is_every_record_in_file_order(transformed):
    pattern, tft_output, rows = transformed
    batches = list(data.make_dataset(pattern, tft_output, 100, shuffle=False, num_epochs=1))
    assert [int(b[ITEM].shape[0]) for b in batches[:-1]] == [100] * (len(batches) - 1)
    np.testing.assert_array_equal(_column(batches, ITEM), [int(r[ITEM]) for r in rows])
    history = np.concatenate([b[F.HISTORY_MASK].numpy() for b in batches])
    np.testing.assert_array_equal(history, np.stack([r[F.HISTORY_MASK].numpy() for r in rows]))
    genres = [list(tf.sparse.to_dense(r[GENRES]).numpy()) for r in rows]
    got = [
        list(row[row >= 0])
        for b in batches
        for row in tf.sparse.to_dense(b[GENRES], default_value=-1).numpy()
    ]
    assert got == genres


def test_shuffled_passes_are_full_batches_of_the_same_records_and_repeat(transformed):
    pattern, tft_output, rows = transformed
    ids = sorted(int(r[ITEM]) * 2 + int(r[LABEL]) for r in rows)

    def epoch(seed):
        ds = data.make_dataset(pattern, tft_output, 64, shuffle=True, num_epochs=1, seed=seed)
        return list(ds)

    first = epoch(0)
    assert all(int(b[ITEM].shape[0]) == 64 for b in first)  # the partial batch is dropped
    assert len(first) == len(rows) // 64
    got = _column(first, ITEM) * 2 + _column(first, LABEL)
    assert set(got) <= set(ids) and len(got) == len(rows) // 64 * 64
    unshuffled = np.array([int(r[ITEM]) for r in rows[: len(got)]])
    assert not np.array_equal(_column(first, ITEM), unshuffled)
    np.testing.assert_array_equal(_column(epoch(0), ITEM), _column(first, ITEM))  # seeded
    twice = data.make_dataset(pattern, tft_output, 100, shuffle=False, num_epochs=2)
    assert sum(int(b[ITEM].shape[0]) for b in twice) == 2 * len(rows)


def _dense(value):
    if isinstance(value, tf.SparseTensor):
        return tf.sparse.to_dense(value, default_value=-7).numpy()
    return value.numpy()


@pytest.mark.parametrize("split", ["train", "eval"])
def test_raw_examples_transformed_as_read_equal_transforms_materialized_output(tiny_data, split):
    """The default path (BehaviorSequenceGen's examples, transformed a batch at a time by
    transform_features_layer) gives, feature by feature and row by row, what Transform's Beam
    pass wrote (the fixture runs Transform with materialize on)."""
    tft_output = tft.TFTransformOutput(tiny_data.transform_graph)
    raw_files = sorted(tf.io.gfile.glob(tiny_data.raw(split)))
    done_files = sorted(tf.io.gfile.glob(tiny_data.transformed(split)))
    assert data.examples_kind(raw_files, tft_output) == data.RAW
    assert data.examples_kind(done_files, tft_output) == data.TRANSFORMED

    def rows(pattern):
        batches = list(data.make_dataset(pattern, tft_output, 1000, shuffle=False, num_epochs=1))
        names = sorted(tft_output.transformed_feature_spec())
        assert all(sorted(b) == names for b in batches), sorted(batches[0])
        return {n: [r for b in batches for r in _dense(b[n]).tolist()] for n in names}

    # Transform writes its own shards in its own order: match rows by their raw identity
    # (user, item, timestamp's hour and label are not unique; the full row is).
    raw, done = rows(tiny_data.raw(split)), rows(tiny_data.transformed(split))
    names = sorted(raw)

    def keyed(columns):
        return sorted(
            tuple(repr(columns[n][i]) for n in names) for i in range(len(columns[names[0]]))
        )

    assert len(raw[ITEM]) == len(done[ITEM]) > 100
    assert keyed(raw) == keyed(done)
    # And the ids are the vocabulary's: the item id of row i is its raw item's line number.
    vocab = tft_output.vocabulary_by_name(F.ITEM_VOCAB)
    raw_items = [
        tf.train.Example.FromString(r.numpy()).features.feature[F.ITEM_ID].bytes_list.value[0]
        for r in tf.data.TFRecordDataset(raw_files, "GZIP")
    ]
    want = [vocab.index(i) if i in vocab else -1 for i in raw_items]
    got = [i if i < len(vocab) else -1 for i in raw[ITEM]]  # OOV buckets after the vocabulary
    assert got == want


def test_examples_that_are_neither_raw_nor_transformed_are_an_error_naming_the_file(
    transformed, tmp_path
):
    _, tft_output, _ = transformed
    path = str(tmp_path / "other.gz")
    example = tf.train.Example()
    example.features.feature["something_else"].int64_list.value.append(1)
    with tf.io.TFRecordWriter(path, "GZIP") as w:
        w.write(example.SerializeToString())
    with pytest.raises(ValueError, match=r"other\.gz.*item_id_idx.*history_item_ids"):
        data.make_dataset(path, tft_output, 8)


def test_no_matching_files_is_an_error_naming_the_pattern(transformed, tmp_path):
    _, tft_output, _ = transformed
    missing = str(tmp_path / "nothing-*.gz")
    with pytest.raises(ValueError, match="nothing-"):
        data.make_dataset(missing, tft_output, 8)


def test_positive_rows_keeps_labelled_rows_and_their_sparse_values():
    batch = {
        LABEL: tf.constant([1, 0, 1, 1], tf.int64),
        ITEM: tf.constant([10, 11, 12, 13], tf.int64),
        F.HISTORY_MASK: tf.constant([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]),
        # row 0: genres 3, 4; row 1: 5; row 2: none; row 3: 6
        GENRES: tf.SparseTensor(
            indices=[[0, 0], [0, 1], [1, 0], [3, 0]],
            values=tf.constant([3, 4, 5, 6], tf.int64),
            dense_shape=[4, 2],
        ),
    }
    out = positive_rows(batch)
    np.testing.assert_array_equal(out[ITEM].numpy(), [10, 12, 13])
    np.testing.assert_array_equal(out[F.HISTORY_MASK].numpy(), [[1, 0], [0, 0], [1, 1]])
    assert isinstance(out[GENRES], tf.SparseTensor)
    dense = tf.sparse.to_dense(out[GENRES], default_value=-1).numpy()
    np.testing.assert_array_equal(dense, [[3, 4], [-1, -1], [6, -1]])


def test_positive_rows_with_a_non_positive_weight_keeps_logged_events_not_sampled_negatives():
    from models.retrieval.trainer import TARGET_WEIGHT

    batch = {
        LABEL: tf.constant([1, 0, 0, 1], tf.int64),
        F.EVENT: tf.constant([1, 1, 0, 1], tf.int64),  # row 1: a low rating; row 2: sampled
        ITEM: tf.constant([10, 11, 12, 13], tf.int64),
    }
    out = positive_rows(batch, 0.25)
    np.testing.assert_array_equal(out[ITEM].numpy(), [10, 11, 13])
    np.testing.assert_allclose(out[TARGET_WEIGHT].numpy(), [1.0, 0.25, 1.0])
    only = positive_rows(batch)  # weight 0: positives only, no weight column
    np.testing.assert_array_equal(only[ITEM].numpy(), [10, 13])
    assert TARGET_WEIGHT not in only
    old = positive_rows({k: v for k, v in batch.items() if k != F.EVENT}, 0.25)
    np.testing.assert_array_equal(old[ITEM].numpy(), [10, 13])  # data without `event`


@pytest.mark.parametrize(
    "epochs, examples, cap, want",
    [
        (5, 300_000, 2_000_000, 5),  # ML-100K's ranker: 1.5M passes, under the cap
        (5, 500_000, 2_000_000, 4),  # 4 x 500K = 2M fits, 5 would not
        (5, 3_000_000, 2_000_000, 1),  # 1M events: one epoch, never zero
        (3, 10, 0, 3),  # 0: no cap
    ],
)
def test_capped_epochs(epochs, examples, cap, want):
    from models.common.data import capped_epochs

    assert capped_epochs(epochs, examples, cap) == want
