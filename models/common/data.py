"""Input pipeline over Transform's output, and sizes read from its vocabularies."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from schemas import features as F


def _gzip_reader(filenames):
    return tf.data.TFRecordDataset(filenames, compression_type="GZIP")


def make_dataset(
    file_pattern,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    *,
    shuffle: bool = True,
    num_epochs: int | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of transformed features (dict name -> tensor [batch, ...]).

    Args:
        file_pattern: a glob or list of globs of transformed, gzipped tf.Examples.
        tf_transform_output: Transform's output (for the feature spec).
        batch_size: examples per batch.
        shuffle: shuffle files and examples (training).
        num_epochs: None repeats forever.
        seed: shuffle seed.
    """
    return tf.data.experimental.make_batched_features_dataset(
        file_pattern=file_pattern,
        batch_size=batch_size,
        features=tf_transform_output.transformed_feature_spec(),
        reader=_gzip_reader,
        num_epochs=num_epochs,
        shuffle=shuffle,
        shuffle_seed=seed,
        drop_final_batch=shuffle,
        sloppy_ordering=False,
    )


def vocab_sizes(tf_transform_output: tft.TFTransformOutput) -> dict[str, int]:
    """Number of embedding rows per id feature, OOV buckets included."""
    size = tf_transform_output.vocabulary_size_by_name
    return {
        F.ITEM_ID: size(F.ITEM_VOCAB) + F.ITEM_OOV_BUCKETS,
        F.USER_ID: size(F.USER_VOCAB) + F.USER_OOV_BUCKETS,
        F.PRIMARY_GENRE: size(F.GENRE_VOCAB) + F.CATEGORY_OOV_BUCKETS,
        F.GENDER: size(F.GENDER_VOCAB) + F.CATEGORY_OOV_BUCKETS,
        F.OCCUPATION: size(F.OCCUPATION_VOCAB) + F.CATEGORY_OOV_BUCKETS,
        F.AGE: len(F.AGE_BUCKET_BOUNDARIES) + 2,  # + missing (0) and the top bucket
        F.HOUR_OF_DAY: 24,
        F.DAY_OF_WEEK: 7,
    }


def item_positive_counts(tf_transform_output: tft.TFTransformOutput) -> np.ndarray:
    """Positive training count of every item id (OOV buckets get count 0), [num_item_ids].

    Transform saved the counts as a frequency vocabulary ("count item" lines);
    this aligns them with the item vocabulary's ids.
    """
    items = tf_transform_output.vocabulary_by_name(F.ITEM_VOCAB)
    index = {item: i for i, item in enumerate(items)}
    counts = np.zeros(len(items) + F.ITEM_OOV_BUCKETS, dtype=np.float64)
    path = tf_transform_output.vocabulary_file_by_name(F.ITEM_POSITIVE_FREQ_VOCAB)
    with tf.io.gfile.GFile(path, "rb") as f:
        for line in f:
            count, _, item = line.rstrip(b"\n").partition(b" ")
            if item in index:
                counts[index[item]] = float(count)
    return counts
