"""AUC and user-weighted AUC (GAUC, DIN paper eq. 1), in numpy and as a TFMA metric.

GAUC = sum_u w_u AUC_u / sum_u w_u over the users that have both a positive and a negative
example, with w_u the user's number of examples (impressions).

In TFMA the metric is query-based: put it in a MetricsSpec with `query_key=F.USER_ID`, and
TFMA groups each user's examples before they reach the combiner (see evaluation.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

GAUC_NAME = "gauc"


def _average_ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks of scores, ties sharing their average rank."""
    order = np.argsort(scores, kind="mergesort")
    _, inverse, counts = np.unique(scores[order], return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = np.empty(len(scores))
    ranks[order] = (ends - (counts - 1) / 2.0)[inverse]
    return ranks


def auc(labels, scores) -> float:
    """ROC AUC (Mann-Whitney, ties count 1/2); NaN without both classes."""
    labels = np.asarray(labels).reshape(-1) > 0
    scores = np.asarray(scores, np.float64).reshape(-1)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def gauc(labels, scores, groups) -> tuple[float, int]:
    """(GAUC, number of users scored): impression-weighted mean of per-user AUCs.

    Args:
        labels: [n] 0/1 labels.
        scores: [n] predictions.
        groups: [n] user ids (any hashable dtype).
    """
    labels, scores = np.asarray(labels).reshape(-1), np.asarray(scores).reshape(-1)
    _, inverse = np.unique(np.asarray(groups).reshape(-1), return_inverse=True)
    order = np.argsort(inverse, kind="mergesort")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    total = weight = 0.0
    users = 0
    for idx in np.split(order, bounds):
        value = auc(labels[idx], scores[idx])
        if not np.isnan(value):
            total += len(idx) * value
            weight += len(idx)
            users += 1
    return (total / weight if weight else float("nan")), users


class GAUC(metric_types.Metric):
    """User-weighted AUC as a query-based TFMA metric (needs a MetricsSpec query_key)."""

    def __init__(self, name: str = GAUC_NAME):
        super().__init__(_gauc_computations, name=name)


metric_types.register_metric(GAUC)


def _gauc_computations(
    name: str = GAUC_NAME,
    eval_config=None,
    model_names: list[str] | None = None,
    output_names: list[str] | None = None,
    example_weighted: bool = False,
    query_key: str = "",
) -> metric_types.MetricComputations:
    if not query_key:
        raise ValueError("GAUC is query-based: set query_key (the user id) in its MetricsSpec")
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            key = metric_types.MetricKey(
                name=name,
                model_name=model_name,
                output_name=output_name,
                example_weighted=example_weighted,
            )
            combiner = _GAUCCombiner(key, eval_config, example_weighted)
            computations.append(
                metric_types.MetricComputation(keys=[key], preprocessors=None, combiner=combiner)
            )
    return computations


class _GAUCCombiner(beam.CombineFn):
    """Accumulates [sum_u w_u AUC_u, sum_u w_u] over the users (queries) of a slice."""

    def __init__(self, key: metric_types.MetricKey, eval_config, example_weighted: bool):
        self._key, self._eval_config, self._example_weighted = key, eval_config, example_weighted

    def create_accumulator(self) -> list[float]:
        return [0.0, 0.0]

    def add_input(self, accumulator: list[float], element) -> list[float]:
        labels, predictions, example_weight = next(
            metric_util.to_label_prediction_example_weight(
                element,
                eval_config=self._eval_config,
                model_name=self._key.model_name,
                output_name=self._key.output_name,
                example_weighted=self._example_weighted,
                flatten=False,
                require_single_example_weight=True,
            )
        )
        value = auc(labels, predictions)
        if not np.isnan(value):
            weight = float(np.asarray(labels).size) * float(example_weight)
            accumulator[0] += weight * value
            accumulator[1] += weight
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[list[float]]) -> list[float]:
        result = [0.0, 0.0]
        for acc in accumulators:
            result[0] += acc[0]
            result[1] += acc[1]
        return result

    def extract_output(self, accumulator: list[float]) -> dict:
        total, weight = accumulator
        return {self._key: total / weight if weight > 0 else float("nan")}
