"""HardNegativeMiner executor: reads users and the catalog, runs both blessed models, writes.

The retrieval model is a two-tower SavedModel at `<uri>/Format-Serving`
(signatures `query_embedding` and `candidate_embedding`) with the catalog's
embeddings at `<uri>/item_embeddings.npz` (`ids`, `embeddings`); catalog items
missing from that file are embedded with `candidate_embedding`. The ranker is a
DIN SavedModel at `<uri>/Format-Serving` with `score_candidates` (raw user
tensors [B], histories [B, L], candidates [B, N] -> scores [B, N]). The
selection itself is in `mining`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import baseline_inputs as B
from components.hard_negative_miner import mining
from models.common import examples as retrieval_io
from models.retrieval.export import ITEM_EMBEDDINGS_FILE
from schemas import features as F
from schemas.serving import CANDIDATE_SIGNATURE, QUERY_SIGNATURE, SCORE_CANDIDATES, SCORES

_NP = {F.INT: np.int64, F.STRING: object, F.STRING_LIST: object}
FAMILIES = {"retrieval_model": B.RETRIEVAL, "ranking_model": B.RANKING}
_CANDIDATE_INPUTS = (F.ITEM_ID, F.PRIMARY_GENRE, F.YEAR)  # the ranker's per-candidate inputs


@dataclasses.dataclass
class MiningData:
    """Each user's query inputs (from the latest example) and the catalog.

    Attributes:
        users: [U] user ids (str).
        queries: raw query inputs, name -> [U] or [U, L] array.
        exclude: per user, catalog indices of every item the user interacted with.
        item_ids: [V] catalog item ids (str).
        candidates: raw candidate inputs, name -> [V] or [V, G] array.
    """

    users: list[str]
    queries: dict[str, np.ndarray]
    exclude: list[np.ndarray]
    item_ids: list[str]
    candidates: dict[str, np.ndarray]


def load_mining_data(examples, catalog, split: str = "train") -> MiningData:
    """Reads the latest `split` example of every user, what each user has seen, the catalog.

    Seen items come from every split of `examples` (histories and positive targets),
    as BehaviorSequenceGen's ranker negatives avoid every item a user touched.
    """
    splits = artifact_utils.decode_split_names(examples.split_names)
    names = retrieval_io.QUERY_FEATURES + (F.ITEM_ID, F.LABEL)
    columns = {
        s: retrieval_io.read_columns(
            retrieval_io.split_pattern(examples, s), F.SEQUENCE_FEATURES, names
        )
        for s in sorted(set(splits) | {split})
    }
    cols = columns[split]
    latest = mining.latest_rows(cols[F.USER_ID], cols[F.TIMESTAMP])
    rows = [latest[u] for u in sorted(latest)]
    seen: dict = {}
    for c in columns.values():
        part = (c[F.USER_ID], c[F.ITEM_ID], c[F.LABEL], c[F.HISTORY_ITEM_IDS])
        for user, items in mining.seen_items(*part).items():
            seen.setdefault(user, set()).update(items)
    items = retrieval_io.read_columns(
        retrieval_io.split_pattern(catalog, retrieval_io.CATALOG_SPLIT),
        F.CATALOG_FEATURES,
        retrieval_io.CANDIDATE_FEATURES,
    )
    index = {item: i for i, item in enumerate(items[F.ITEM_ID])}
    queries = {}
    for n in retrieval_io.QUERY_FEATURES:
        picked = [cols[n][r] for r in rows]
        queries[n] = (
            retrieval_io.pad(picked)
            if n in F.FIXED_LENGTH_LISTS
            else np.array(picked, _NP[F.SEQUENCE_FEATURES[n]])
        )
    pad, dtypes = retrieval_io.pad, F.CATALOG_FEATURES
    candidates = {
        n: pad(items[n]) if n == F.GENRES else np.array(items[n], _NP[dtypes[n]])
        for n in retrieval_io.CANDIDATE_FEATURES
    }
    users = [cols[F.USER_ID][r] for r in rows]
    exclude = [np.array(sorted(index[i] for i in seen[u] if i in index), np.int64) for u in users]
    return MiningData(
        users=[u.decode() for u in users],
        queries=queries,
        exclude=exclude,
        item_ids=[i.decode() for i in items[F.ITEM_ID]],
        candidates=candidates,
    )


def item_embeddings(model_uri: str, loaded, data: MiningData, batch_size: int) -> np.ndarray:
    """[V, D] catalog embeddings: from item_embeddings.npz, the rest by candidate_embedding."""
    path = os.path.join(model_uri, ITEM_EMBEDDINGS_FILE)
    known: dict[str, np.ndarray] = {}
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path, "rb") as f:
            npz = np.load(f, allow_pickle=False)
            ids = [i.decode() if isinstance(i, bytes) else str(i) for i in npz["ids"]]
            known = dict(zip(ids, npz["embeddings"], strict=True))
    missing = [i for i, item in enumerate(data.item_ids) if item not in known]
    if missing:
        signature = _signature(loaded, CANDIDATE_SIGNATURE, model_uri)
        subset = {n: v[missing] for n, v in data.candidates.items()}
        computed = retrieval_io.embed(signature, subset, batch_size)
        known.update({data.item_ids[i]: v for i, v in zip(missing, computed, strict=True)})
        logging.info("HardNegativeMiner: %d catalog items embedded by the model", len(missing))
    return np.stack([known[i] for i in data.item_ids]).astype(np.float32)


def _signature(loaded, name: str, uri: str):
    if name not in loaded.signatures:
        raise ValueError(f"{uri} has no {name!r} signature (has {sorted(loaded.signatures)})")
    return loaded.signatures[name]


def rank(signature, queries: dict, candidates: dict, top: np.ndarray) -> np.ndarray:
    """The ranker's scores [B, N] of candidates `top` [B, N] (catalog indices) for B users."""
    specs = signature.structured_input_signature[1]
    inputs = {n: queries[n] for n in queries}
    inputs.update({n: candidates[n][top] for n in _CANDIDATE_INPUTS})
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise ValueError(f"{SCORE_CANDIDATES} needs inputs {missing}; available: {sorted(inputs)}")
    result = signature(**{n: tf.constant(inputs[n], s.dtype) for n, s in specs.items()})
    if SCORES not in result:
        raise ValueError(f"{SCORE_CANDIDATES} returns {sorted(result)}, not {SCORES!r}")
    scores = result[SCORES].numpy()
    if scores.shape != top.shape:
        raise ValueError(f"{SCORE_CANDIDATES} returned shape {scores.shape}, want {top.shape}")
    return scores


def mine(retrieval_uri: str, ranking_uri: str, data: MiningData, cfg: mining.MiningConfig):
    """Hard negatives per user: {user id: [item id, ...]} (see `mining`)."""
    retrieval = tf.saved_model.load(path_utils.serving_model_path(retrieval_uri))
    ranker = tf.saved_model.load(path_utils.serving_model_path(ranking_uri))
    score = _signature(ranker, SCORE_CANDIDATES, ranking_uri)
    items = item_embeddings(retrieval_uri, retrieval, data, cfg.batch_size)
    query_signature = _signature(retrieval, QUERY_SIGNATURE, retrieval_uri)
    query = retrieval_io.embed(query_signature, data.queries, cfg.batch_size)
    rows: list[list[int]] = []
    for start in range(0, len(data.users), cfg.batch_size):
        end = start + cfg.batch_size
        top, _, valid = mining.retrieve(query[start:end], items, data.exclude[start:end], cfg.top_n)
        batch = {n: v[start:end] for n, v in data.queries.items()}
        scores = rank(score, batch, data.candidates, top)
        rows += mining.select_hard_negatives(top, valid, scores, cfg.top_k, cfg.max_per_user)
        logging.info("HardNegativeMiner: %d/%d users", min(end, len(data.users)), len(data.users))
    return mining.negatives_by_user(data.users, rows, data.item_ids)


def write_output(artifact, negatives: dict, report: dict) -> None:
    """Writes the TSV and report.json atomically and copies the counts to custom properties."""
    mining.write_atomic(os.path.join(artifact.uri, mining.TSV_FILE), mining.format_tsv(negatives))
    mining.write_atomic(
        os.path.join(artifact.uri, mining.REPORT_FILE), json.dumps(report, indent=2)
    )
    for key, value in report.items():
        if isinstance(value, bool) or value is None or isinstance(value, dict):
            continue
        if isinstance(value, int):
            artifact.set_int_custom_property(key, value)
        elif isinstance(value, float):
            artifact.set_float_custom_property(key, value)
        elif isinstance(value, str):
            artifact.set_string_custom_property(key, value)


def config_from_properties(props) -> mining.MiningConfig:
    """The MiningConfig from execution properties (absent ones keep their defaults)."""
    names = [f.name for f in dataclasses.fields(mining.MiningConfig)]
    return mining.MiningConfig(**{n: int(props[n]) for n in names if props.get(n) is not None})


def _single(input_dict, key):
    artifacts = input_dict.get(key) or []
    return artifacts[0] if artifacts else None


class Executor(base_executor.BaseExecutor):
    """Mines hard negatives with the blessed models; an empty file when there are none yet."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        started = time.perf_counter()
        cfg = config_from_properties(exec_properties)
        out = artifact_utils.get_single_instance(output_dict["hard_negatives"])
        # Missing, empty or wrong-kind baselines are "no baseline" (an empty file), never a crash.
        input_dict, statuses = B.filter_inputs(input_dict, FAMILIES, "HardNegativeMiner")
        retrieval, ranking = (_single(input_dict, k) for k in ("retrieval_model", "ranking_model"))
        report = {**dataclasses.asdict(cfg), "retrieval_model": None, "ranking_model": None}
        if retrieval is None or ranking is None:
            absent = [n for n, a in (("retrieval", retrieval), ("ranking", ranking)) if a is None]
            status = f"no blessed {' and '.join(absent)} model yet: empty file"
            logging.warning("HardNegativeMiner: %s", status)
            negatives, users = {}, 0
        else:
            split = exec_properties.get("split") or "train"
            data = load_mining_data(
                artifact_utils.get_single_instance(input_dict["examples"]),
                artifact_utils.get_single_instance(input_dict["catalog"]),
                split,
            )
            negatives = mine(retrieval.uri, ranking.uri, data, cfg)
            users, status = len(data.users), "mined"
            report.update(retrieval_model=retrieval.uri, ranking_model=ranking.uri)
        report.update(status=status, **mining.summarize(negatives, users))
        report["seconds"] = time.perf_counter() - started
        write_output(out, negatives, report)
        B.record_statuses(output_dict, statuses)
        logging.info("HardNegativeMiner: %s", json.dumps(report))
        print(
            f"HardNegativeMiner: {status}; {report['users_mined']} users, "
            f"{report['negatives']} negatives ({report['negatives_per_user']:.1f}/user), "
            f"{report['seconds']:.1f} s"
        )
