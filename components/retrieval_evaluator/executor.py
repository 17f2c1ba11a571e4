"""RetrievalEvaluator executor: embeds eval queries and the catalog, ranks, blesses.

The model is a retrieval SavedModel at `<model uri>/Format-Serving` with two
signatures taking raw tensors: serving.QUERY_SIGNATURE (user features and history) and
serving.CANDIDATE_SIGNATURE (item features), each returning {EMBEDDING_KEY: [B, D]}.
Only the inputs a signature declares are fed to it. Reading the examples is
`models/common/examples.py`'s; the ranking, metrics and decision are in `metrics`;
this module only runs the model and writes artifacts.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import baseline_inputs as B
from components.blessing import write_blessing
from components.retrieval_evaluator import metrics as M
from components.retrieval_evaluator import plots
from models.common.examples import EvalData, embed, load_eval_data
from schemas import serving

METRICS_FILE, PLOT_FILE = "metrics.json", "recall_at_k.png"


def evaluate_model(model_uri: str, data: EvalData, batch_size: int = 256) -> dict:
    """Metrics and Recall@K curve of one model artifact over the eval data."""
    path = path_utils.serving_model_path(model_uri)
    loaded = tf.saved_model.load(path)
    for name in (serving.QUERY_SIGNATURE, serving.CANDIDATE_SIGNATURE):
        if name not in loaded.signatures:
            raise ValueError(f"{path} has no {name!r} signature (has {sorted(loaded.signatures)})")
    items = embed(loaded.signatures[serving.CANDIDATE_SIGNATURE], data.candidates, batch_size)
    query = np.zeros((0, items.shape[1]), np.float32)  # no query: decide() refuses to bless
    if len(data.targets):
        query = embed(loaded.signatures[serving.QUERY_SIGNATURE], data.queries, batch_size)
    ranking = M.rank_targets(query, items, data.targets, data.exclude, batch_size)
    return {"metrics": M.compute_metrics(ranking), "recall_curve": M.recall_curve(ranking.ranks)}


def config_from_properties(props: Mapping) -> M.BlessingConfig:
    """Rebuilds the BlessingConfig from execution properties (absent ones keep defaults)."""
    names = [f.name for f in dataclasses.fields(M.BlessingConfig)]
    return M.BlessingConfig(**{n: float(props[n]) for n in names if props.get(n) is not None})


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
        # A missing, empty or ranking baseline is "no baseline", said in the report.
        input_dict, statuses = B.filter_inputs(
            input_dict, {"baseline_model": B.RETRIEVAL}, "RetrievalEvaluator"
        )
        baselines = input_dict["baseline_model"]
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
            "baseline_status": statuses["baseline_model"],
            "recall_curve": {"model": result["recall_curve"]}
            | ({"baseline": base["recall_curve"]} if base else {}),
        }
        write_evaluation(artifact_utils.get_single_uri(output_dict["evaluation"]), report)
        write_blessing(
            artifact_utils.get_single_instance(output_dict["blessing"]), blessed, model, baseline
        )
        B.record_statuses(output_dict, statuses)
        logging.info("RetrievalEvaluator: blessed=%s %s; %s", blessed, reasons, result["metrics"])
