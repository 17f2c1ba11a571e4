"""B1's validation split on the tiny run: the DIN ranker trains on every raw training
example with its sampled negatives (as the pipeline's Trainer does), never on the
two-tower's positives-only subset, and is evaluated on the targets' own negatives."""

import collections

import tensorflow as tf
import tensorflow_transform as tft

from bench import retrieval_data as D
from schemas import features as F


def _rows(pattern):
    out = []
    for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), "GZIP"):
        f = tf.train.Example.FromString(record.numpy()).features.feature
        out.append(
            (
                f[F.USER_ID].bytes_list.value[0],
                f[F.TIMESTAMP].int64_list.value[0],
                f[F.ITEM_ID].bytes_list.value[0],
                f[F.LABEL].int64_list.value[0],
                f[F.EVENT].int64_list.value[0] if F.EVENT in f else None,
            )
        )
    return out


def test_the_ranker_trains_on_every_example_and_is_evaluated_on_the_targets_negatives(
    tiny_data, tmp_path
):
    arts = D.Artifacts.locate(tiny_data.config.pipeline_root)
    paths = D.write_validation_split(
        arts, str(tmp_path), tft.TFTransformOutput(arts.transform_graph)
    )
    pipeline_train = _rows(tiny_data.raw("train"))
    ranker_train, ranker_eval = _rows(paths[D.RANKER_TRAIN]), _rows(paths[D.RANKER_EVAL])
    two_tower = sum(1 for _ in tf.data.TFRecordDataset(tf.io.gfile.glob(paths[D.TRAIN]), "GZIP"))

    sampled = [r for r in ranker_train if r[4] == 0]
    assert sampled and len(sampled) > len(ranker_train) // 4  # the negatives are there
    assert two_tower < len(ranker_train)  # the two-tower's subset is not the ranker's input
    # Every ranker example comes from the pipeline's training split, none twice.
    assert not set(ranker_train) & set(ranker_eval)
    assert set(ranker_train) | set(ranker_eval) <= set(pipeline_train)

    # The eval holds one target per user and that target's sampled negatives (same time).
    targets = {r[0]: r for r in ranker_eval if r[3] == 1}
    assert len(targets) == sum(1 for r in ranker_eval if r[3] == 1)
    negatives = [r for r in ranker_eval if r[3] == 0]
    assert all(r[4] == 0 and r[1] == targets[r[0]][1] for r in negatives)
    ratio = tiny_data.config.sequences.negative_ratio
    per_user = collections.Counter(r[0] for r in negatives)
    assert set(per_user) == set(targets) and max(per_user.values()) <= ratio
    assert sum(per_user.values()) >= len(targets) * ratio * 0.9  # a few users run short
    # Each target is its user's last positive among the examples the ranker trains on.
    for user, ts, item, label, _ in ranker_train:
        if user in targets and label == 1:
            assert (ts, item) < targets[user][1:3]
