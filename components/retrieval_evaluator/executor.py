"""RetrievalEvaluator executor: embeds eval queries and the catalog, ranks, blesses.

The model is a retrieval SavedModel at `<model uri>/Format-Serving` with two
signatures taking raw tensors: QUERY_SIGNATURE (user features and history) and
CANDIDATE_SIGNATURE (item features), each returning {EMBEDDING_KEY: [B, D]}.
Only the inputs a signature declares are fed to it. The ranking, metrics and
decision are in `metrics`; this module only reads data and writes artifacts.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from absl import logging
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.retrieval_evaluator import metrics as M
from components.retrieval_evaluator import plots
from schemas import features as F

QUERY_SIGNATURE, CANDIDATE_SIGNATURE, EMBEDDING_KEY = (
    "query_embedding",
    "candidate_embedding",
    "embedding",
)
METRICS_FILE, PLOT_FILE = "metrics.json", "recall_at_k.png"
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


def _pad(lists: list[list[bytes]], width: int = 0) -> np.ndarray:
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
        n: _pad(cols[n]) if n in F.FIXED_LENGTH_LISTS else np.array(cols[n], dtype=_NP[n])
        for n in QUERY_FEATURES
    }
    candidates = {
        F.ITEM_ID: np.array(items[F.ITEM_ID], dtype=object),
        F.GENRES: _pad(items[F.GENRES]),
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
        if EMBEDDING_KEY not in result:
            raise ValueError(f"the signature returns {sorted(result)}, not {EMBEDDING_KEY!r}")
        out.append(result[EMBEDDING_KEY].numpy())
    return np.concatenate(out).astype(np.float32)


def evaluate_model(model_uri: str, data: EvalData, batch_size: int = 256) -> dict:
    """Metrics and Recall@K curve of one model artifact over the eval data."""
    path = path_utils.serving_model_path(model_uri)
    loaded = tf.saved_model.load(path)
    for name in (QUERY_SIGNATURE, CANDIDATE_SIGNATURE):
        if name not in loaded.signatures:
            raise ValueError(f"{path} has no {name!r} signature (has {sorted(loaded.signatures)})")
    items = embed(loaded.signatures[CANDIDATE_SIGNATURE], data.candidates, batch_size)
    query = np.zeros((0, items.shape[1]), np.float32)  # no query: decide() refuses to bless
    if len(data.targets):
        query = embed(loaded.signatures[QUERY_SIGNATURE], data.queries, batch_size)
    ranking = M.rank_targets(query, items, data.targets, data.exclude, batch_size)
    return {"metrics": M.compute_metrics(ranking), "recall_curve": M.recall_curve(ranking.ranks)}


def config_from_properties(props: Mapping) -> M.BlessingConfig:
    """Rebuilds the BlessingConfig from execution properties (absent ones keep defaults)."""
    names = [f.name for f in dataclasses.fields(M.BlessingConfig)]
    return M.BlessingConfig(**{n: float(props[n]) for n in names if props.get(n) is not None})


def _write_blessing(blessing, blessed: bool, model, baseline) -> None:
    """Marks the ModelBlessing artifact as TFX's Evaluator does (so Pusher and Resolver work)."""
    name = constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME
    with fileio.open(os.path.join(blessing.uri, name), "w") as f:
        f.write("")
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, int(blessed))
    blessing.set_string_custom_property(
        constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri
    )
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    if baseline is not None:
        blessing.set_string_custom_property(
            constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri
        )
        blessing.set_int_custom_property(
            constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.id
        )


def write_evaluation(uri: str, report: dict) -> None:
    """Writes METRICS_FILE (the report) and PLOT_FILE (Recall@K curves) under uri."""
    with fileio.open(os.path.join(uri, METRICS_FILE), "w") as f:
        json.dump(report, f, indent=2)
    with fileio.open(os.path.join(uri, PLOT_FILE), "wb") as f:
        f.write(plots.recall_at_k_png(report["recall_curve"]))


def _or_default(value, default):
    return default if value is None else value


class Executor(base_executor.BaseExecutor):
    """Computes the B1 metrics of the model (and baseline), writes them, and blesses."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        config = config_from_properties(exec_properties)
        batch_size = int(exec_properties.get("batch_size") or 256)
        data = load_eval_data(
            artifact_utils.get_single_instance(input_dict["examples"]),
            artifact_utils.get_single_instance(input_dict["catalog"]),
            _or_default(exec_properties.get("eval_split"), "eval"),
            _or_default(exec_properties.get("exclude_split"), "train"),
        )
        model = artifact_utils.get_single_instance(input_dict["model"])
        baselines = input_dict.get("baseline_model") or []
        baseline = baselines[0] if baselines else None
        result = evaluate_model(model.uri, data, batch_size)
        base = evaluate_model(baseline.uri, data, batch_size) if baseline else None
        blessed, reasons = M.decide(result["metrics"], base and base["metrics"], config)
        report = {
            "model": result["metrics"],
            "baseline": base and base["metrics"],
            "blessed": blessed,
            "reasons": reasons,
            "config": dataclasses.asdict(config),
            "model_uri": model.uri,
            "baseline_uri": baseline.uri if baseline else None,
            "recall_curve": {"model": result["recall_curve"]}
            | ({"baseline": base["recall_curve"]} if base else {}),
        }
        write_evaluation(artifact_utils.get_single_uri(output_dict["evaluation"]), report)
        _write_blessing(
            artifact_utils.get_single_instance(output_dict["blessing"]), blessed, model, baseline
        )
        logging.info("RetrievalEvaluator: blessed=%s %s; %s", blessed, reasons, result["metrics"])
