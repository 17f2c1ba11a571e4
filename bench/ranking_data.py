"""B2's data in memory: raw sequence examples -> Transform graph -> numpy columns, and the
validation cut of the training split used for early stopping.

Reading the gzipped tf.Examples once and keeping the transformed columns in memory makes
every later epoch a slice of numpy arrays instead of a parse of ~200k examples.
"""

from __future__ import annotations

import collections
import glob
import os

import numpy as np
import tensorflow as tf

from schemas import features as F

Columns = dict[str, np.ndarray]


def load_split(tft_output, examples_dir: str, split: str, batch: int = 8192) -> Columns:
    """Raw sequence examples of one split, transformed in process.

    Args:
        tft_output: Transform's output (its graph is applied here).
        examples_dir: BehaviorSequenceGen's examples artifact (Split-train, Split-eval).
        split: "train" or "eval".
        batch: examples per transform call.

    Returns:
        {transformed dense feature: array [n] or [n, L]}, plus F.LABEL [n] and the raw
        F.TIMESTAMP [n].
    """
    files = sorted(glob.glob(os.path.join(examples_dir, f"Split-{split}", "*")))
    if not files:
        raise FileNotFoundError(f"no examples under {examples_dir}/Split-{split}")
    spec = tft_output.raw_feature_spec()
    spec.pop(F.LABEL, None)  # the layer drops the label; it is parsed below
    layer = tft_output.transform_features_layer()
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch)
    cols = collections.defaultdict(list)
    full_spec = tft_output.raw_feature_spec()
    for serialized in ds:
        raw = tf.io.parse_example(serialized, full_spec)
        out = layer({k: v for k, v in raw.items() if k in spec})
        for key, value in out.items():
            if not isinstance(value, tf.SparseTensor):
                cols[key].append(value.numpy())
        for key in (F.TIMESTAMP, F.LABEL):  # not transformed outputs of the layer
            cols[key].append(_dense(raw[key]))
    return {k: np.concatenate(v) for k, v in cols.items()}


def _dense(x) -> np.ndarray:
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x)
    return np.asarray(x).reshape(-1)


def validation_cut(users: np.ndarray, timestamps: np.ndarray, labels: np.ndarray):
    """Cuts each user's last positive moment out of the training split (leave-last-out again).

    Per user, t = the latest timestamp of a positive example. Examples at t (the positive,
    its sampled negatives and any event tied with it) are validation; examples before t
    are kept for fitting; examples after t (events rated below the threshold between t and
    the eval target) are dropped, since their history contains the validation target.
    Users without a positive example are all kept for fitting.

    Args:
        users: [n] user ids.
        timestamps: [n] event times.
        labels: [n] 0/1.

    Returns:
        (fit indices, validation indices), each sorted.
    """
    users, timestamps = np.asarray(users).reshape(-1), np.asarray(timestamps).reshape(-1)
    positive = np.asarray(labels).reshape(-1) > 0
    _, inverse = np.unique(users, return_inverse=True)
    last = np.full(inverse.max() + 1 if len(inverse) else 0, np.iinfo(np.int64).max)
    pos_t = np.full_like(last, np.iinfo(np.int64).min)
    np.maximum.at(pos_t, inverse[positive], timestamps[positive])
    last = np.where(pos_t == np.iinfo(np.int64).min, last, pos_t)
    t = last[inverse]
    return np.flatnonzero(timestamps < t), np.flatnonzero(timestamps == t)


def take(cols: Columns, idx: np.ndarray) -> Columns:
    """The rows idx of every column."""
    return {k: v[idx] for k, v in cols.items()}


def prepare(tft_output, examples_dir: str) -> dict[str, Columns]:
    """{"fit", "validation", "eval"}: the training split cut by `validation_cut`, and eval."""
    train = load_split(tft_output, examples_dir, "train")
    fit, val = validation_cut(
        train[F.transformed_name(F.USER_ID)], train[F.TIMESTAMP], train[F.LABEL]
    )
    return {
        "fit": take(train, fit),
        "validation": take(train, val),
        "eval": load_split(tft_output, examples_dir, "eval"),
    }


def describe(splits: dict[str, Columns]) -> dict:
    """Examples, positives and users per split (for the JSON and the table)."""
    user = F.transformed_name(F.USER_ID)
    return {
        name: {
            "examples": int(len(c[F.LABEL])),
            "positives": int(c[F.LABEL].sum()),
            "users": int(len(np.unique(c[user]))),
        }
        for name, c in splits.items()
    }


def batches(cols: Columns, batch_size: int, seed: int | None = None) -> tf.data.Dataset:
    """Batches of in-memory columns; shuffled every pass (dropping the last batch) if seeded."""
    ds = tf.data.Dataset.from_tensor_slices(cols)
    if seed is None:
        return ds.batch(batch_size)
    n = len(next(iter(cols.values())))
    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(2)
