"""Input pipeline over Transform's output or over the raw examples it analysed, and sizes
read from its vocabularies.

The pipeline's Transform does not materialize transformed examples by default
(PipelineConfig.transform_materialize): the trainers read BehaviorSequenceGen's raw
examples and apply Transform's graph (`transform_features_layer`) in their tf.data
pipeline, as TFX intends for `materialize=False`. At 1M events (1.8M training examples)
one pass over the raw examples, parsed and transformed here, took 15.4 s (median of 3,
13.3-25.3) against 10.3 s over the materialized ones (`python -m bench.transform_read ROOT
--phases tfdata`): about 5 s more per pass, while Transform's Beam pass that decodes,
transforms, encodes and writes them is gone (Transform 317 -> 178 s at 1M, README B6).
`make_dataset` reads either kind and tells them apart by their feature names.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from schemas import features as F

READ_BUFFER_BYTES = 1 << 20  # per file; TFRecordDataset's default for GZIP is 256 KB
SHUFFLE_BUFFER = 10_000  # serialized examples, as make_batched_features_dataset's default


def _files(file_pattern) -> list[str]:
    patterns = [file_pattern] if isinstance(file_pattern, str | bytes) else list(file_pattern)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise ValueError(f"no files match {patterns}")
    return files


RAW = "raw"
TRANSFORMED = "transformed"


def examples_kind(files: list[str], tf_transform_output: tft.TFTransformOutput) -> str:
    """RAW or TRANSFORMED: which features the first record of `files` carries.

    Raises:
        ValueError: the record has neither every transformed feature nor every raw
            feature Transform reads; the message names the file and what is missing.
    """
    transformed = set(tf_transform_output.transformed_feature_spec())
    raw = set(tf_transform_output.raw_feature_spec())
    for path in files:
        for record in tf.data.TFRecordDataset(path, "GZIP").take(1):
            keys = set(tf.train.Example.FromString(record.numpy()).features.feature)
            if transformed <= keys:
                return TRANSFORMED
            if raw <= keys:
                return RAW
            raise ValueError(
                f"{path}: its first record is neither a transformed example (missing "
                f"{sorted(transformed - keys)}) nor a raw one Transform can read (missing "
                f"{sorted(raw - keys)})"
            )
    return TRANSFORMED  # no records at all: nothing will be parsed


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

    Raw examples (BehaviorSequenceGen's, when Transform does not materialize) are parsed
    with Transform's raw feature spec and then transformed a batch at a time by
    `transform_features_layer()`; transformed examples are only parsed. Serialized
    records are shuffled and batched, then each batch is parsed at once: one
    parse_example per batch, never one per example. tf.data's
    make_batched_features_dataset (used before) read ML-100K's 206k training examples in
    8-20 s, mostly in its parallel interleave; this pipeline reads and parses them in ~1 s.

    Args:
        file_pattern: a glob or list of globs of gzipped tf.Examples, all transformed
            or all raw (see `examples_kind`).
        tf_transform_output: Transform's output (feature specs and graph).
        batch_size: examples per batch.
        shuffle: shuffle files and examples (training); drops the last partial batch.
        num_epochs: None repeats forever.
        seed: shuffle seed.
    """
    files = _files(file_pattern)
    raw = examples_kind(files, tf_transform_output) == RAW
    spec = (
        tf_transform_output.raw_feature_spec()
        if raw
        else tf_transform_output.transformed_feature_spec()
    )
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    # flat_map, not interleave: a parallel interleave hands each record across threads,
    # and that alone made a pass 8x slower (10.3 vs 1.0 s on ML-100K's training split).
    ds = ds.flat_map(lambda f: tf.data.TFRecordDataset(f, "GZIP", buffer_size=READ_BUFFER_BYTES))
    if shuffle:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    ds = ds.repeat(num_epochs)
    ds = ds.batch(batch_size, drop_remainder=shuffle)
    ds = ds.map(
        lambda records: tf.io.parse_example(records, spec),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if raw:
        layer = tf_transform_output.transform_features_layer()
        ds = ds.map(layer, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


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
    for item, count in _positive_frequencies(tf_transform_output):
        if item in index:
            counts[index[item]] = count
    return counts


def _positive_frequencies(tf_transform_output: tft.TFTransformOutput):
    """Yields (item id bytes, positive count) of every line ("count item") of the
    frequency vocabulary Transform saved for log-Q, whatever the item vocabulary kept."""
    path = tf_transform_output.vocabulary_file_by_name(F.ITEM_POSITIVE_FREQ_VOCAB)
    with tf.io.gfile.GFile(path, "rb") as f:
        for line in f:
            count, _, item = line.rstrip(b"\n").partition(b" ")
            yield item, float(count)


def item_oov_report(tf_transform_output: tft.TFTransformOutput) -> dict:
    """What the item vocabulary left out: training items beyond it (a capped vocabulary)
    and their positive training events, which share the F.ITEM_OOV_BUCKETS buckets.

    Returns:
        {"vocabulary": items in it, "items_beyond": items with positives outside it,
        "positive_events_beyond": their positive events, "positive_events": all of them,
        "oov_buckets": F.ITEM_OOV_BUCKETS}.
    """
    known = set(tf_transform_output.vocabulary_by_name(F.ITEM_VOCAB))
    beyond = events = total = 0
    for item, count in _positive_frequencies(tf_transform_output):
        total += int(count)
        if item not in known:
            beyond += 1
            events += int(count)
    return {
        "vocabulary": len(known),
        "items_beyond": beyond,
        "positive_events_beyond": events,
        "positive_events": total,
        "oov_buckets": F.ITEM_OOV_BUCKETS,
    }


def capped_epochs(epochs: int, examples: int, max_passes: int) -> int:
    """`epochs`, lowered so that epochs x examples <= max_passes, but at least 1 (0 or a
    cap above epochs x examples: unchanged)."""
    if not max_passes or examples * epochs <= max_passes:
        return epochs
    return max(1, max_passes // max(examples, 1))
