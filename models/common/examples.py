"""Readers of the pipeline's example files, shared by components and bench.

Reads the gzipped tf.Examples of an Examples artifact (BehaviorSequenceGen's
sequence examples and its catalog split) into columns, and builds the
RetrievalEvaluator's eval data: each positive eval event as a raw query, the
catalog as raw candidates, and the items each query must not be credited for.
`embed` runs a retrieval signature (schemas/serving.py) over such inputs.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from schemas import features as F
from schemas import serving

CATALOG_SPLIT = "catalog"
QUERY_FEATURES = (F.USER_ID, F.AGE, F.GENDER, F.OCCUPATION, F.TIMESTAMP) + F.FIXED_LENGTH_LISTS
CANDIDATE_FEATURES = (F.ITEM_ID, F.GENRES, F.PRIMARY_GENRE, F.YEAR)
_DEFAULTS = {F.INT: F.MISSING_INT, F.FLOAT: 0.0, F.STRING: F.UNKNOWN}
_TF_TYPES = {F.INT: tf.int64, F.FLOAT: tf.float32, F.STRING: tf.string}
_NP = {n: np.int64 if t == F.INT else object for n, t in F.SEQUENCE_FEATURES.items()}


@dataclasses.dataclass
class EvalData:
    """Eval queries and the catalog, as raw model inputs.

    Attributes:
        queries: query signature inputs, name -> [Q] or [Q, L] array.
        targets: [Q] catalog index of each target (-1: not in the catalog).
        exclude: per query, catalog indices of the user's earlier items.
        candidates: candidate signature inputs, name -> [V] or [V, G] array.
    """

    queries: dict[str, np.ndarray]
    targets: np.ndarray
    exclude: list[np.ndarray]
    candidates: dict[str, np.ndarray]


def read_columns(pattern: str, dtypes: Mapping[str, str], names) -> dict[str, list]:
    """Columns of gzipped tf.Examples: scalars as a list of values, lists as lists of bytes."""
    files = sorted(fileio.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no examples match {pattern}")
    spec = {
        n: tf.io.VarLenFeature(tf.string)
        if dtypes[n] == F.STRING_LIST
        else tf.io.FixedLenFeature([], _TF_TYPES[dtypes[n]], default_value=_DEFAULTS[dtypes[n]])
        for n in names
    }
    columns: dict[str, list] = {n: [] for n in names}
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096)
    for batch in dataset.map(lambda x: tf.io.parse_example(x, spec)):
        for n in names:
            value = batch[n]
            if isinstance(value, tf.SparseTensor):
                columns[n].extend(tf.RaggedTensor.from_sparse(value).to_list())
            else:
                columns[n].extend(value.numpy().tolist())
    return columns


def pad(lists: list[list[bytes]], width: int = 0) -> np.ndarray:
    """[n, max(width, longest, 1)] object array of bytes, padded with F.PAD."""
    width = max([width, 1] + [len(x) for x in lists])
    pad = F.PAD.encode()
    return np.array([list(x) + [pad] * (width - len(x)) for x in lists], dtype=object)


def _earlier_items(columns: dict[str, list]) -> dict[bytes, dict[bytes, int]]:
    """user -> item -> earliest time t at which the item is known to precede any target >= t.

    A history item of an example at ts precedes ts; a positive item at ts precedes ts + 1.
    """
    known: dict[bytes, dict[bytes, int]] = collections.defaultdict(dict)
    pad = F.PAD.encode()
    rows = zip(*(columns[n] for n in (F.USER_ID, F.TIMESTAMP, F.LABEL, F.ITEM_ID)), strict=True)
    for (user, ts, label, item), history in zip(rows, columns[F.HISTORY_ITEM_IDS], strict=True):
        entries = [(h, ts) for h in history if h != pad] + ([(item, ts + 1)] if label == 1 else [])
        seen = known[user]
        for h, t in entries:
            seen[h] = min(t, seen.get(h, t))
    return known


def split_pattern(artifact, split: str) -> str:
    """The file glob of one split of an Examples artifact, with a clear error if absent."""
    splits = artifact_utils.decode_split_names(artifact.split_names)
    if split not in splits:
        raise ValueError(f"split {split!r} not in {artifact.uri} (splits: {splits})")
    return os.path.join(artifact_utils.get_split_uri([artifact], split), "*")


def load_eval_data(examples, catalog, eval_split: str = "eval", exclude_split: str = "train"):
    """Reads the label == 1 eval events as queries, their exclusions, and the catalog."""
    names = QUERY_FEATURES + (F.ITEM_ID, F.LABEL)
    cols = read_columns(split_pattern(examples, eval_split), F.SEQUENCE_FEATURES, names)
    keep = [i for i, label in enumerate(cols[F.LABEL]) if label == 1]
    cols = {n: [v[i] for i in keep] for n, v in cols.items()}
    items = read_columns(
        split_pattern(catalog, CATALOG_SPLIT), F.CATALOG_FEATURES, CANDIDATE_FEATURES
    )
    index = {item: i for i, item in enumerate(items[F.ITEM_ID])}
    earlier = {}
    if exclude_split:
        more = (F.USER_ID, F.TIMESTAMP, F.LABEL, F.ITEM_ID, F.HISTORY_ITEM_IDS)
        earlier = _earlier_items(
            read_columns(split_pattern(examples, exclude_split), F.SEQUENCE_FEATURES, more)
        )
    exclude = []
    for user, ts, history in zip(
        cols[F.USER_ID], cols[F.TIMESTAMP], cols[F.HISTORY_ITEM_IDS], strict=True
    ):
        ids = set(history) | {h for h, t in earlier.get(user, {}).items() if t <= ts}
        exclude.append(np.array(sorted(index[h] for h in ids if h in index), dtype=np.int64))
    queries = {
        n: pad(cols[n]) if n in F.FIXED_LENGTH_LISTS else np.array(cols[n], dtype=_NP[n])
        for n in QUERY_FEATURES
    }
    candidates = {
        F.ITEM_ID: np.array(items[F.ITEM_ID], dtype=object),
        F.GENRES: pad(items[F.GENRES]),
        F.PRIMARY_GENRE: np.array(items[F.PRIMARY_GENRE], dtype=object),
        F.YEAR: np.array(items[F.YEAR], dtype=np.int64),
    }
    targets = np.array([index.get(i, -1) for i in cols[F.ITEM_ID]], dtype=np.int64)
    return EvalData(queries, targets, exclude, candidates)


def embed(signature, inputs: Mapping[str, np.ndarray], batch_size: int) -> np.ndarray:
    """Runs a signature over inputs in batches; returns its EMBEDDING_KEY output [N, D]."""
    specs = signature.structured_input_signature[1]
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise ValueError(f"the signature needs inputs {missing}; available: {sorted(inputs)}")
    size = len(next(iter(inputs.values())))
    out = []
    for start in range(0, size, batch_size):
        batch = {
            n: tf.constant(inputs[n][start : start + batch_size], s.dtype) for n, s in specs.items()
        }
        result = signature(**batch)
        if serving.EMBEDDING_KEY not in result:
            raise ValueError(
                f"the signature returns {sorted(result)}, not {serving.EMBEDDING_KEY!r}"
            )
        out.append(result[serving.EMBEDDING_KEY].numpy())
    return np.concatenate(out).astype(np.float32)
