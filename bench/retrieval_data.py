"""B1 data: the pipeline's leave-last-out split, a validation split cut from it, interactions.

- `Artifacts.locate(root)`: the latest outputs of the pipeline's data stages.
- `user_events(...)`: every user's kept events (item, timestamp, label) in the
  pipeline's own order, rebuilt from the raw interactions by BehaviorSequenceGen's
  `build_timeline` with the pipeline's SequenceConfig (so the label-0 events,
  i.e. ratings < threshold, are known too; the sequence examples mix them with
  sampled ranker negatives).
- `interactions_before(...)`: a user-item matrix of the events strictly before each
  user's target (EASE^R's X, MostPopular's counts).
- `write_validation_split(...)`: per user, the last positive *training* event is the
  validation target and only the events strictly before it stay for training
  (the test protocol cut again from the training events); written as raw and
  transformed examples, so `load_eval_data` and the two-tower `run_fn` read it
  exactly as they read the pipeline's split. The DIN ranker trains on every raw
  training example, sampled negatives included, as the pipeline's Trainer does, and
  is evaluated on the targets and their own sampled negatives.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import os

import numpy as np
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from components.behavior_sequence_gen import sequences as S
from models.common import example_codec
from schemas import features as F

TRAIN, EVAL = S.TRAIN, S.EVAL
RANKER_TRAIN, RANKER_EVAL = "ranker_train", "ranker_eval"
# Bumped when the validation split's files change, so that a cached split is rebuilt
# (v2: the ranker's own training and eval files, with the sampled negatives).
VALIDATION_LAYOUT = "v2"
_BATCH = 4096


@dataclasses.dataclass(frozen=True)
class Artifacts:
    """Directories of the data stages' latest outputs under one pipeline root."""

    interactions: str
    examples: str
    catalog: str
    transform_graph: str

    @classmethod
    def locate(cls, root: str) -> Artifacts:
        def latest(*parts):
            found = sorted(glob.glob(os.path.join(root, *parts, "*")), key=os.path.getmtime)
            if not found:
                raise FileNotFoundError(f"no {'/'.join(parts)} artifact under {root}")
            return found[-1]

        return cls(
            latest("interactions_example_gen", "examples"),
            latest("BehaviorSequenceGen", "examples"),
            latest("BehaviorSequenceGen", "catalog"),
            latest("Transform", "transform_graph"),
        )


def examples_artifact(uri: str) -> standard_artifacts.Examples:
    """An Examples artifact over a directory of `Split-*` folders (for load_eval_data)."""
    artifact = standard_artifacts.Examples()
    artifact.uri = uri
    splits = sorted(d[len("Split-") :] for d in os.listdir(uri) if d.startswith("Split-"))
    artifact.split_names = artifact_utils.encode_split_names(splits)
    return artifact


def _records(pattern: str):
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no examples match {pattern}")
    return tf.data.TFRecordDataset(files, compression_type="GZIP").batch(_BATCH)


def user_events(interactions_uri: str, catalog_ids, cfg: S.SequenceConfig) -> dict[str, list]:
    """user -> [(timestamp, item, label, split)] of the kept events, in the pipeline's order.

    Args:
        interactions_uri: the interactions ExampleGen artifact (every split is read).
        catalog_ids: the catalog's item ids (rows naming other items are dropped).
        cfg: the pipeline's SequenceConfig (threshold, split).
    """
    dtypes = example_codec.table_dtypes(F.INTERACTIONS)
    rows = collections.defaultdict(list)
    for batch in _records(os.path.join(interactions_uri, "Split-*", "*")):
        for record in batch.numpy():
            row = example_codec.decode(record, dtypes)
            rows[row[F.USER_ID]].append(row)
    known = dict.fromkeys(catalog_ids)
    out = {}
    for user, user_rows in rows.items():
        timeline, _ = S.build_timeline(user, user_rows, None, known, cfg)
        if timeline is not None:
            out[user] = [(e.timestamp, e.item_id, e.label, e.split) for e in timeline.events]
    return out


def interactions_before(
    events: dict[str, list],
    cutoffs: dict[str, tuple[int, str]],
    item_index: dict[str, int],
    *,
    positives_only: bool,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Interactions strictly before each user's cutoff (its target), as coordinates.

    Args:
        events: `user_events` output.
        cutoffs: user -> (timestamp, item) of the target; users without one keep
            every event.
        item_index: item id -> catalog column.
        positives_only: keep only label-1 events (rating >= threshold).

    Returns:
        (users in row order, rows [N], cols [N]).
    """
    users = sorted(events)
    rows, cols = [], []
    for r, user in enumerate(users):
        cut = cutoffs.get(user)
        for ts, item, label, _ in events[user]:
            if cut is not None and (ts, item) >= cut:
                continue
            if (label or not positives_only) and item in item_index:
                rows.append(r)
                cols.append(item_index[item])
    return users, np.array(rows, np.int64), np.array(cols, np.int64)


def target_cutoffs(events: dict[str, list]) -> dict[str, tuple[int, str]]:
    """user -> (timestamp, item) of the user's test target (the EVAL event)."""
    return {user: (ts, item) for user, evs in events.items() for ts, item, _, s in evs if s == EVAL}


def validation_cutoffs(events: dict[str, list]) -> dict[str, tuple[int, str]]:
    """user -> (timestamp, item) of the user's last positive training event."""
    out = {}
    for user, evs in events.items():
        positives = [(ts, item) for ts, item, label, split in evs if label and split == TRAIN]
        if positives:
            out[user] = positives[-1]
    return out


def _keys(batch) -> tuple:
    """(user, timestamp, item, label, event) arrays of a batch of raw records; F.EVENT is
    1 for a logged event, 0 for a sampled negative, 1 where absent."""
    spec = {
        F.USER_ID: tf.io.FixedLenFeature([], tf.string),
        F.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
        F.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
        F.LABEL: tf.io.FixedLenFeature([], tf.int64),
        F.EVENT: tf.io.FixedLenFeature([], tf.int64, default_value=1),
    }
    parsed = tf.io.parse_example(batch, spec)
    keys = (F.USER_ID, F.TIMESTAMP, F.ITEM_ID, F.LABEL, F.EVENT)
    return tuple(parsed[k].numpy() for k in keys)


def _write(path: str, records: list[bytes]) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    tmp = path + ".tmp"
    with tf.io.TFRecordWriter(tmp, options="GZIP") as w:
        for r in records:
            w.write(r)
    os.replace(tmp, path)


def cut_validation(train_pattern: str) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Splits raw training examples: (before each user's validation target, the targets,
    the targets' sampled negatives).

    The validation target of a user is the last label-1 example in (timestamp, item)
    order; examples at or after it are dropped, except the target itself (eval). The
    sampled ranker negatives (F.EVENT 0) at the target's timestamp are the ranker's
    validation negatives: they go to the third list, never to training.
    """
    records, keys = [], []
    for batch in _records(train_pattern):
        records.extend(batch.numpy())
        keys.extend(zip(*_keys(batch), strict=True))
    targets: dict[bytes, tuple] = {}
    for user, ts, item, label, _ in keys:
        if label == 1 and (ts, item) > targets.get(user, (-1, b"")):
            targets[user] = (ts, item)
    train, evals, negatives = [], [], []
    for record, (user, ts, item, label, event) in zip(records, keys, strict=True):
        cut = targets.get(user)
        if cut is not None and ts == cut[0] and label == 0 and event == 0:
            negatives.append(record)
        elif cut is None or (ts, item) < cut:
            train.append(record)
        elif (ts, item) == cut and label == 1:
            evals.append(record)
    return train, evals, negatives


def trainer_subset(records: list[bytes]) -> list[bytes]:
    """The records the two-tower trainer uses: positives, plus one record per other item.

    run_fn trains on label-1 examples only; the others serve only to collect
    item features (ItemCatalog), for which one record per item is enough. This
    keeps the validation split's Transform pass about 4x smaller.
    """
    keep, covered = [], set()
    for start in range(0, len(records), _BATCH):
        chunk = records[start : start + _BATCH]
        _, _, items, labels, _ = _keys(tf.constant(chunk))
        for record, item, label in zip(chunk, items, labels, strict=True):
            if label == 1 or item not in covered:
                keep.append(record)
                covered.add(item)
    return keep


def _to_example(row: dict) -> bytes:
    feature = {}
    for name, value in row.items():
        value = np.asarray(value).reshape(-1)
        if value.dtype.kind in "iub":
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=value.tolist()))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=value.tolist()))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def transform_records(records: list[bytes], tft_output) -> list[bytes]:
    """Raw sequence examples -> serialized transformed examples (the Transform graph)."""
    raw_spec = tft_output.raw_feature_spec()
    out = []
    for start in range(0, len(records), _BATCH):
        parsed = tf.io.parse_example(tf.constant(records[start : start + _BATCH]), raw_spec)
        batch = tft_output.transform_raw_features(parsed, drop_unused_features=True)
        columns = {}
        for name, value in batch.items():
            if isinstance(value, tf.SparseTensor):
                columns[name] = tf.RaggedTensor.from_sparse(value).to_list()
            else:
                columns[name] = list(value.numpy())
        size = len(next(iter(columns.values())))
        out.extend(_to_example({n: c[i] for n, c in columns.items()}) for i in range(size))
    return out


def write_validation_split(artifacts: Artifacts, out_dir: str, tft_output) -> dict[str, str]:
    """Writes the validation split once per data-stage artifacts; returns its locations.

    Returns:
        {"raw": dir with Split-train / Split-eval raw examples (for load_eval_data),
         "train": glob of the two-tower's transformed training examples (its subset),
         "eval": the same for the targets,
         "ranker_train": glob of every raw training example (the DIN ranker's input, with
            the sampled negatives, as the pipeline's Trainer reads Split-train),
         "ranker_eval": glob of the raw targets and their sampled negatives}.
    """
    key = "-".join(os.path.basename(u) for u in (artifacts.examples, artifacts.transform_graph))
    base = os.path.join(out_dir, f"validation-{VALIDATION_LAYOUT}-{key}")
    paths = {
        "raw": os.path.join(base, "raw"),
        TRAIN: os.path.join(base, "transformed", "Split-train", "*"),
        EVAL: os.path.join(base, "transformed", "Split-eval", "*"),
        RANKER_TRAIN: os.path.join(base, "raw", "Split-train", "*"),
        RANKER_EVAL: os.path.join(base, "raw", "ranker-eval", "*"),
    }
    done = os.path.join(base, "DONE")
    if os.path.exists(done):
        return paths
    train, evals, negatives = cut_validation(
        os.path.join(artifacts.examples, "Split-train", "*")
    )
    print(
        f"validation split: {len(train):,} training examples, {len(evals):,} targets "
        f"(+ {len(negatives):,} sampled negatives for the ranker); transforming the "
        "two-tower's subset ...",
        flush=True,
    )
    for split, records in ((TRAIN, train), (EVAL, evals)):
        _write(os.path.join(paths["raw"], f"Split-{split}", "data.gz"), records)
        subset = trainer_subset(records) if split == TRAIN else records
        _write(paths[split].replace("*", "data.gz"), transform_records(subset, tft_output))
    _write(paths[RANKER_EVAL].replace("*", "data.gz"), evals + negatives)
    with open(done, "w") as f:
        f.write("ok\n")
    return paths
