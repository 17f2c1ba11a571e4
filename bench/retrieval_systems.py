"""B1 systems: each is a function `system(split) -> (top [Q, K] catalog indices, extras)`.

A `Split` holds one evaluation split (the pipeline's test split, or the
validation split cut from its training events): the queries with their targets
and exclusions (`models.common.examples.EvalData`), the
interactions before each target, and the transformed files a trainer reads.
`evaluate_top` turns any system's top lists into the B1 metrics, so adding a
system (e.g. the served model, which returns item ids) is one function:
wrap it with `from_item_ids` and add it to the dict in `bench/retrieval.py`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import numpy as np

from bench import baselines
from bench import retrieval_data as D
from components.retrieval_evaluator import executor as RE
from components.retrieval_evaluator import metrics as M
from models.common import examples as X
from schemas import features as F
from schemas import serving as SV

TOP_K = M.CURVE_MAX_K  # 100
# Both edges of the grid lie well beyond where either event set peaks on ML-100K / synthetic.
EASE_LAMBDAS = (10.0, 25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 350.0, 500.0, 750.0, 1e3, 2e3, 5e3)
EVENT_SETS = {"rated": False, "positive": True}  # X's events -> positives_only


@dataclasses.dataclass
class Split:
    """One evaluation split.

    Attributes:
        name: "test" or "validation".
        data: queries (raw features), targets [Q], exclusions, catalog features.
        query_users: [Q] user id of each query.
        item_ids: [V] catalog item ids (column order of every matrix).
        events: `retrieval_data.user_events` output.
        cutoffs: user -> (timestamp, item) of the user's target in this split.
        train_files: glob of the two-tower's training examples.
        ranker_train_files: glob of the DIN ranker's training examples: every raw
            training example with its sampled negatives, as the pipeline's Trainer
            reads them ("": none given; `ServedModels` then refuses the split).
        ranker_eval_files: glob of the ranker's eval examples: this split's targets and
            their sampled negatives ("": none given, as above).
    """

    name: str
    data: X.EvalData
    query_users: list[str]
    item_ids: list[str]
    events: dict[str, list]
    cutoffs: dict[str, tuple[int, str]]
    train_files: str
    ranker_train_files: str = ""
    ranker_eval_files: str = ""

    def __post_init__(self):
        """Checks that the queries' targets are the targets the events give."""
        index = {item: i for i, item in enumerate(self.item_ids)}
        for user, target in zip(self.query_users, self.data.targets, strict=True):
            expected = index.get(self.cutoffs.get(user, (0, None))[1], -2)
            if expected != target:
                raise ValueError(f"{self.name} split: user {user}'s target disagrees")
        if len(set(self.query_users)) != len(self.query_users):
            raise ValueError(f"{self.name} split: a user has more than one query")

    def interactions(self, positives_only: bool) -> tuple[np.ndarray, np.ndarray]:
        """(X [U, V] of the events before each target, query rows [Q] into X)."""
        index = {item: i for i, item in enumerate(self.item_ids)}
        users, rows, cols = D.interactions_before(
            self.events, self.cutoffs, index, positives_only=positives_only
        )
        x = baselines.interaction_matrix(rows, cols, (len(users), len(index)))
        row_of = {u: r for r, u in enumerate(users)}
        return x, np.array([row_of[u] for u in self.query_users], np.int64)


System = Callable[[Split], tuple[np.ndarray, dict]]


def top_by_score(split: Split, query: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Top-K catalog indices [Q, K] of scores query [Q, D] @ items [V, D]^T, exclusions applied."""
    data = split.data
    return M.rank_targets(query, items, data.targets, data.exclude).top[:, :TOP_K]


def evaluate_top(top: np.ndarray, targets: np.ndarray, num_items: int) -> dict:
    """B1 metrics and Recall@1..K of top lists [Q, K] (catalog indices; -1 = empty slot)."""
    top = np.asarray(top, np.int64)
    hit = top == np.asarray(targets, np.int64)[:, None]
    ranks = np.where(hit.any(axis=1), hit.argmax(axis=1), M.MISS)
    ranking = M.Ranking(ranks=ranks, top=np.where(top < 0, num_items, top), num_items=num_items)
    metrics = M.compute_metrics(ranking)
    if (top < 0).any():  # the stand-in for an empty slot is not a catalog item
        metrics["coverage@10"] = len(set(top[:, :10].ravel()) - {-1}) / num_items
    return {"metrics": metrics, "recall_curve": M.recall_curve(ranks, top.shape[1])}


def from_item_ids(fn: Callable[[Split], tuple[list[list[bytes | str]], dict]]) -> System:
    """A system from one returning item ids per query (unknown ids become empty slots)."""

    def system(split: Split) -> tuple[np.ndarray, dict]:
        ids, extras = fn(split)
        index = {item: i for i, item in enumerate(split.item_ids)}
        top = np.full((len(ids), TOP_K), -1, np.int64)
        for q, row in enumerate(ids):
            cols = [index.get(i.decode() if isinstance(i, bytes) else i, -1) for i in row]
            top[q, : min(TOP_K, len(cols))] = cols[:TOP_K]
        return top, extras

    return system


def most_popular(positives_only: bool) -> System:
    """Items by their number of training events before the targets (all users)."""

    def system(split: Split) -> tuple[np.ndarray, dict]:
        x, _ = split.interactions(positives_only)
        pop = baselines.popularity(x.sum(axis=0))
        query = np.ones((len(split.query_users), 1), np.float32)
        return top_by_score(split, query, pop[:, None]), {"events": _events(positives_only)}

    return system


def ease(lam: float, positives_only: bool) -> System:
    """EASE^R fitted on the events before the targets; scores X_u @ B."""

    def system(split: Split) -> tuple[np.ndarray, dict]:
        x, rows = split.interactions(positives_only)
        start = time.perf_counter()
        b = baselines.ease_weights(x, lam)
        fit_s = time.perf_counter() - start
        top = top_by_score(split, x[rows], b.T.astype(np.float32))
        return top, {"lambda": lam, "events": _events(positives_only), "fit_s": fit_s}

    return system


def _events(positives_only: bool) -> str:
    return "positive" if positives_only else "rated"


def tune_ease(validation: Split, lambdas=EASE_LAMBDAS) -> tuple[dict, str, list[dict]]:
    """Grid search of lambda per event set on the validation split, by NDCG@10 then HR@10.

    Returns:
        ({event set: its best {"lambda", "positives_only"}}, the event set whose best
        is better, every grid point with its metrics).
    """
    grid = []
    for events, positives_only in EVENT_SETS.items():
        x, rows = validation.interactions(positives_only)
        gram = None
        for lam in lambdas:
            b, gram = _ease_from_gram(x, lam, gram)
            top = top_by_score(validation, x[rows], b.T.astype(np.float32))
            m = evaluate_top(top, validation.data.targets, len(validation.item_ids))["metrics"]
            grid.append({"lambda": lam, "events": events, **m})
            print(
                f"  EASE validation lambda={lam:g} X={events}: HR@10 {m['hr@10']:.4f} "
                f"NDCG@10 {m['ndcg@10']:.4f}",
                flush=True,
            )
    best = {}
    for events, positives_only in EVENT_SETS.items():
        top = max((g for g in grid if g["events"] == events), key=_ndcg_then_hr)
        best[events] = {"lambda": top["lambda"], "positives_only": positives_only, **top}
    pick = max(best, key=lambda events: _ndcg_then_hr(best[events]))
    return best, pick, grid


def _ndcg_then_hr(row: dict) -> tuple[float, float]:
    return row["ndcg@10"], row["hr@10"]


def _ease_from_gram(x, lam, gram):
    """ease_weights, reusing X^T X across lambdas (same result as baselines.ease_weights)."""
    if gram is None:
        x64 = np.asarray(x, np.float64)
        gram = x64.T @ x64
    p = np.linalg.inv(gram + lam * np.eye(len(gram)))
    b = -p / np.diag(p)[np.newaxis, :]
    np.fill_diagonal(b, 0.0)
    return b, gram


def tune_most_popular(validation: Split) -> tuple[bool, list[dict]]:
    """Which events count for popularity (all rated or positives), by validation NDCG@10."""
    grid = []
    for events, positives_only in EVENT_SETS.items():
        top, _ = most_popular(positives_only)(validation)
        m = evaluate_top(top, validation.data.targets, len(validation.item_ids))["metrics"]
        grid.append({"events": events, **m})
    best = max(grid, key=lambda g: (g["ndcg@10"], g["hr@10"]))
    return EVENT_SETS[best["events"]], grid


def two_tower_root(work_dir: str, split_name: str) -> str:
    """Where `two_tower` trains the model of a split; its SavedModel is `two_tower_dir`."""
    return os.path.join(work_dir, f"two_tower-{split_name}")


def two_tower_dir(work_dir: str, split_name: str) -> str:
    """The SavedModel `two_tower` exports for a split."""
    return os.path.join(two_tower_root(work_dir, split_name), "model", "Format-Serving")


def two_tower(config, transform_graph: str, work_dir: str) -> System:
    """Trains the two-tower with `run_fn` on the split's training files, then exact search.

    The metrics of the same model through `executor.evaluate_model` (the
    RetrievalEvaluator's path) are kept in the extras, as a cross-check.
    """

    def system(split: Split) -> tuple[np.ndarray, dict]:
        import tensorflow as tf
        from tfx.components.trainer.fn_args_utils import FnArgs

        from models.retrieval import trainer
        from models.retrieval.config import CUSTOM_CONFIG_KEY

        root = two_tower_root(work_dir, split.name)
        tf.io.gfile.rmtree(root) if tf.io.gfile.exists(root) else None
        args = FnArgs(
            train_files=[split.train_files],
            eval_files=[],
            transform_output=transform_graph,
            serving_model_dir=two_tower_dir(work_dir, split.name),
            model_run_dir=os.path.join(root, "model_run"),
            base_model=None,
            custom_config={CUSTOM_CONFIG_KEY: config.to_dict()},
        )
        start = time.perf_counter()
        trainer.run_fn(args)
        wall = time.perf_counter() - start
        loaded = tf.saved_model.load(args.serving_model_dir)
        data = split.data
        items = X.embed(loaded.signatures[SV.CANDIDATE_SIGNATURE], data.candidates, 256)
        query = X.embed(loaded.signatures[SV.QUERY_SIGNATURE], data.queries, 256)
        official = RE.evaluate_model(os.path.dirname(args.serving_model_dir), data)
        summary = trainer_summary(args.model_run_dir)
        extras = {
            "trainer_wall_s": wall,
            "train_s": summary["train_seconds"],
            "examples_per_sec": summary["examples_per_sec"],
            "steps": summary["steps"],
            "seed": config.training.seed,
            "evaluator_metrics": official["metrics"],
        }
        return top_by_score(split, query, items), extras

    return system


def trainer_summary(run_dir: str) -> dict:
    import json

    from models.retrieval import trainer

    with open(os.path.join(run_dir, trainer.SUMMARY_FILE)) as f:
        return json.load(f)


def query_users(data: X.EvalData) -> list[str]:
    """The user id of each query, as str."""
    return [u.decode() if isinstance(u, bytes) else str(u) for u in data.queries[F.USER_ID]]
