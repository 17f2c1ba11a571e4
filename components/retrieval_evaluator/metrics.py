"""Pure logic of RetrievalEvaluator: exact full-catalog ranking, B1 metrics, blessing.

No TFX here. One target per query (leave-last-out): the rank of the target
among the catalog items, after excluding the items the user interacted with
before it, gives every metric:
- HR@K = mean(rank < K) (= Recall@K with one target),
- NDCG@K = mean(1 / log2(rank + 2) if rank < K else 0),
- coverage@10 = |union of the top-10 lists| / catalog size.
Ties count against the target (rank = number of other items scoring >= it),
so a degenerate model that scores everything alike ranks last, not first.
A target missing from the catalog, or with a non-finite score, is a miss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

KS = (10, 50, 100)
COVERAGE_K = 10
CURVE_MAX_K = 100
MISS = np.iinfo(np.int64).max  # the rank of a target that cannot be retrieved
METRICS = ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@100", "ndcg@100", "coverage@10")


@dataclasses.dataclass(frozen=True)
class BlessingConfig:
    """Blessing thresholds: absolute minimums per metric and the allowed regression.

    Attributes:
        min_hr_at_10 ... min_coverage_at_10: the model's metric must be >= this.
        max_regression: relative tolerance against the baseline: a metric below
            baseline * (1 - max_regression) blocks the blessing.
    """

    min_hr_at_10: float = 0.0
    min_ndcg_at_10: float = 0.0
    min_hr_at_50: float = 0.0
    min_ndcg_at_50: float = 0.0
    min_hr_at_100: float = 0.0
    min_ndcg_at_100: float = 0.0
    min_coverage_at_10: float = 0.0
    max_regression: float = 0.05

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"retrieval_evaluator.{field.name} must be in [0, 1], got {value}")

    def minimum(self, metric: str) -> float:
        """The absolute threshold of a metric name such as "hr@10"."""
        return getattr(self, "min_" + metric.replace("@", "_at_"))


@dataclasses.dataclass(frozen=True)
class Ranking:
    """Ranks of the targets and the top lists of a set of queries.

    Attributes:
        ranks: [Q] 0-based rank of each target; MISS for a miss.
        top: [Q, min(CURVE_MAX_K, num_items)] catalog indices, best first.
        num_items: catalog size.
    """

    ranks: np.ndarray
    top: np.ndarray
    num_items: int


def _rank_batch(scores: np.ndarray, targets: np.ndarray, exclude) -> tuple[np.ndarray, np.ndarray]:
    """Ranks and top lists of one batch. scores [b, V]; targets [b] (-1: not in catalog)."""
    scores = np.where(np.isnan(scores), -np.inf, scores)
    rows = np.repeat(np.arange(len(exclude)), [len(e) for e in exclude])
    cols = np.concatenate([np.asarray(e, dtype=np.int64) for e in exclude] + [np.zeros(0, int)])
    keep = cols != targets[rows]  # never exclude the target itself
    scores[rows[keep], cols[keep]] = -np.inf
    num_items = scores.shape[1]
    target_score = scores[np.arange(len(targets)), np.maximum(targets, 0)]
    ranks = np.sum(scores >= target_score[:, None], axis=1) - 1
    miss = (targets < 0) | ~np.isfinite(target_score)
    ranks = np.where(miss, MISS, ranks)
    k = min(CURVE_MAX_K, num_items)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return ranks, np.take_along_axis(part, order, axis=1)


def rank_targets(
    query: np.ndarray,
    items: np.ndarray,
    targets: np.ndarray,
    exclude: Sequence[Sequence[int]],
    batch_size: int = 256,
) -> Ranking:
    """Exact search over the whole catalog by dot product.

    Args:
        query: [Q, D] query embeddings.
        items: [V, D] catalog item embeddings.
        targets: [Q] catalog index of each query's target, -1 if not in the catalog.
        exclude: per query, catalog indices removed from its ranking (its
            earlier items); the target itself is never removed.
        batch_size: queries per matmul.

    Returns:
        The Ranking.
    """
    query, items = np.asarray(query, np.float32), np.asarray(items, np.float32)
    targets = np.asarray(targets, np.int64)
    ranks, tops = [], []
    for start in range(0, len(query), batch_size):
        end = start + batch_size
        r, t = _rank_batch(query[start:end] @ items.T, targets[start:end], exclude[start:end])
        ranks.append(r)
        tops.append(t)
    k = min(CURVE_MAX_K, len(items))
    return Ranking(
        ranks=np.concatenate(ranks) if ranks else np.zeros(0, np.int64),
        top=np.concatenate(tops) if tops else np.zeros((0, k), np.int64),
        num_items=len(items),
    )


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """HR@K: the share of targets ranked in the top K."""
    return float(np.mean(ranks < k)) if len(ranks) else 0.0


def ndcg(ranks: np.ndarray, k: int) -> float:
    """NDCG@K with one relevant item: mean of 1 / log2(rank + 2) over hits, 0 for misses."""
    if not len(ranks):
        return 0.0
    gains = np.where(ranks < k, 1.0 / np.log2(np.minimum(ranks, k) + 2.0), 0.0)
    return float(np.mean(gains))


def coverage(top: np.ndarray, num_items: int, k: int = COVERAGE_K) -> float:
    """Share of the catalog that appears in at least one top-k list."""
    return float(len(np.unique(top[:, :k])) / num_items) if num_items and len(top) else 0.0


def recall_curve(ranks: np.ndarray, max_k: int = CURVE_MAX_K) -> list[float]:
    """[Recall@1, ..., Recall@max_k] (one target per query)."""
    return [hit_rate(ranks, k) for k in range(1, max_k + 1)]


def compute_metrics(ranking: Ranking) -> dict[str, float]:
    """The B1 metrics (METRICS) plus the number of queries."""
    out: dict[str, float] = {}
    for k in KS:
        out[f"hr@{k}"] = hit_rate(ranking.ranks, k)
        out[f"ndcg@{k}"] = ndcg(ranking.ranks, k)
    out[f"coverage@{COVERAGE_K}"] = coverage(ranking.top, ranking.num_items)
    out["num_queries"] = int(len(ranking.ranks))
    return {name: out[name] for name in (*METRICS, "num_queries")}


def decide(
    metrics: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    config: BlessingConfig,
) -> tuple[bool, list[str]]:
    """The blessing decision and its reasons.

    Blessed iff there is at least one query, every metric >= its absolute
    minimum, and (with a baseline) no metric < baseline * (1 - max_regression).

    Returns:
        (blessed, reasons): one reason per failed check; a single line saying
        what passed when blessed.
    """
    reasons = []
    if not metrics.get("num_queries"):
        reasons.append("no query with a positive target in the eval split")
    for name in METRICS:
        value, minimum = metrics[name], config.minimum(name)
        if not value >= minimum:  # also catches NaN
            reasons.append(f"{name} = {value:.4f} is below the threshold {minimum:.4f}")
        if baseline is not None:
            floor = baseline[name] * (1.0 - config.max_regression)
            if not value >= floor:
                reasons.append(
                    f"{name} = {value:.4f} regressed from the baseline's {baseline[name]:.4f} "
                    f"by more than {config.max_regression:.1%} (floor {floor:.4f})"
                )
    if reasons:
        return False, reasons
    against = " and within the tolerance of the baseline" if baseline is not None else ""
    return True, [f"every metric meets its threshold{against}"]
