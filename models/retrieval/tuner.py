"""TFX Tuner entry point of the two-tower model: `tuner_fn(fn_args) -> TunerFnResult`.

A KerasTuner random search over `hyperparameters.SearchSpace` (embedding_dim,
temperature, epochs, learning_rate). The first trial is the configuration as given
(when its values are in the space), so the search reports its gain over it and
never hands on a worse configuration by the objective. Each trial builds the model exactly as
`trainer.run_fn` does (same config, catalog, datasets, step cap), trains it, and
scores it by the objective:

    val_ndcg_at_10: NDCG@10 of each eval positive, ranked by
    exact search over the whole item vocabulary, the user's earlier items excluded
    (the row's history and the user's training positives; never the target itself).

It is the metric RetrievalEvaluator blesses on and B1 reports, computed in
process. A loss is not comparable across trials: the in-batch softmax loss
changes with the temperature itself, not only with ranking quality. NDCG is
chosen over HR@10 because it also rewards order within the top K, so it is less
coarse on a few hundred eval users. HR@10 is recorded with it (tuner_results.json).

The eval split is the validation set, as TFX's Tuner intends (`eval_files`).
It is also the split RetrievalEvaluator reports: with tuning on, its figures are
those of the selected configuration, i.e. optimistic; B1 tunes on its own split.
"""

from __future__ import annotations

import os
import time

import keras_tuner as kt
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras
from keras_tuner.src.engine import base_tuner
from tfx.components.tuner.component import TunerFnResult

from models.common import data
from models.retrieval import trainer
from models.retrieval.config.overrides import flat_value
from models.retrieval.hyperparameters import (
    TUNABLE,
    TUNING_KEY,
    SearchSpace,
    apply_hyperparameters,
)
from models.retrieval.layers import HISTORY, ITEM, USER
from schemas import features as F

OBJECTIVE = "val_ndcg_at_10"
HIT_RATE = "val_hr_at_10"
TOP_K = 10
_EMBED_CHUNK = 8192


def target_ranks(scores: np.ndarray, targets: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """0-based rank of each target among the non-excluded items; ties count against it.

    Args:
        scores: [B, V] query-item scores.
        targets: [B] item ids; outside [0, V) is a miss (rank V).
        exclude: [B, V] True where the item is removed from the row's ranking (the
            target itself is never removed).

    Returns:
        [B] int64 ranks; a miss (unknown target, non-finite score) ranks V.
    """
    batch, num_items = scores.shape
    known = (targets >= 0) & (targets < num_items)
    safe = np.where(known, targets, 0)
    rows = np.arange(batch)
    exclude = exclude.copy()
    exclude[rows, safe] = False
    scores = np.where(exclude | np.isnan(scores), -np.inf, scores)
    target = scores[rows, safe]
    ranks = np.sum(scores >= target[:, None], axis=1) - 1
    return np.where(known & np.isfinite(target), ranks, num_items).astype(np.int64)


def ranking_metrics(ranks: np.ndarray, k: int) -> dict[str, float]:
    """{OBJECTIVE: NDCG@k, HIT_RATE: HR@k} of [Q] ranks (one target per query)."""
    if not len(ranks):
        raise ValueError("the eval split has no positive example to score the trial on")
    hits = ranks < k
    gains = np.where(hits, 1.0 / np.log2(np.minimum(ranks, k) + 2.0), 0.0)
    return {OBJECTIVE: float(gains.mean()), HIT_RATE: float(hits.mean())}


def seen_items(files, tft_output) -> dict[int, np.ndarray]:
    """user id -> sorted item ids [n] of the user's training positives and history items."""
    users, items = [], []
    for batch in data.make_dataset(files, tft_output, 4096, shuffle=False, num_epochs=1):
        user = batch[USER].numpy().reshape(-1)
        history = batch[HISTORY].numpy()  # [B, L], -1 padded
        positive = batch[F.LABEL].numpy().reshape(-1) == 1
        valid = history >= 0
        users += [np.repeat(user, history.shape[1])[valid.reshape(-1)], user[positive]]
        items += [history[valid], batch[ITEM].numpy().reshape(-1)[positive]]
    if not users:
        return {}
    pairs = np.unique(np.stack([np.concatenate(users), np.concatenate(items)], axis=1), axis=0)
    starts = np.flatnonzero(np.diff(pairs[:, 0], prepend=pairs[0, 0] - 1))
    return {
        int(pairs[s, 0]): pairs[s:e, 1]
        for s, e in zip(starts, [*starts[1:], len(pairs)], strict=True)
    }


def exclusion_mask(users, history, seen: dict, num_items: int) -> np.ndarray:
    """[B, V] True for each row's history items [B, L] (-1 padded) and seen[user]."""
    mask = np.zeros((len(users), num_items), bool)
    for row, (user, hist) in enumerate(zip(users, history, strict=True)):
        ids = np.concatenate([hist[(hist >= 0) & (hist < num_items)], seen.get(int(user), [])])
        mask[row, ids[ids < num_items].astype(np.int64)] = True
    return mask


def evaluate(model, dataset, seen: dict, num_items: int, k: int) -> dict[str, float]:
    """The objective of a trained model on batches of transformed eval positives.

    Args:
        model: a trained RetrievalModel.
        dataset: batches of transformed positives (dict of [B, ...]).
        seen: `seen_items` of the training split.
        num_items: candidates are item ids [0, num_items) (the vocabulary, no OOV).
        k: the cut-off.
    """
    ids = tf.range(num_items, dtype=tf.int64)
    candidates = tf.concat(
        [
            model.embed_items(ids[i : i + _EMBED_CHUNK], training=False)
            for i in range(0, num_items, _EMBED_CHUNK)
        ],
        axis=0,
    )  # [V, D]
    ranks = []
    for batch in dataset:
        query = model.query_tower(batch, training=False)  # [B, D]
        scores = tf.matmul(query, candidates, transpose_b=True).numpy()  # [B, V]
        users = batch[USER].numpy().reshape(-1)
        exclude = exclusion_mask(users, batch[HISTORY].numpy(), seen, num_items)
        ranks.append(target_ranks(scores, batch[ITEM].numpy().reshape(-1), exclude))
    return ranking_metrics(np.concatenate(ranks) if ranks else np.zeros(0, np.int64), k)


def train_model(config, fn_args, tft_output):
    """Builds and trains a model as run_fn does (no export). Returns (model, info)."""
    model, epochs, info = trainer.prepare_model(config, fn_args, tft_output)
    counts = info.pop("counts")
    steps = trainer._steps(fn_args.train_steps, config.training.steps_per_epoch, epochs)
    train = trainer.positives_dataset(
        fn_args.train_files, tft_output, config, counts, training=True
    )
    model.fit(train.repeat() if steps else train, epochs=epochs, steps_per_epoch=steps, verbose=0)
    return model, {**info, "counts": counts}


class BaselineFirstOracle(kt.oracles.RandomSearchOracle):
    """RandomSearchOracle whose first trial takes `baseline` ({name: value}, or None)."""

    def __init__(self, baseline: dict | None, **kwargs):
        super().__init__(**kwargs)
        self.baseline = baseline

    def populate_space(self, trial_id):
        """The baseline first, then random values not tried yet."""
        if self.baseline and not self.trials:
            return {"status": "RUNNING", "values": dict(self.baseline)}
        return super().populate_space(trial_id)


def baseline_values(config, space: SearchSpace) -> dict | None:
    """The config's tunable values when each is one of the space's choices, else None."""
    values = {name: flat_value(config, name) for name in TUNABLE}
    return values if all(v in getattr(space, n) for n, v in values.items()) else None


class RetrievalTuner(base_tuner.BaseTuner):
    """KerasTuner tuner whose trial trains the two-tower and returns the objective.

    Args:
        oracle: a KerasTuner oracle over SearchSpace.declare's hyperparameters.
        config: the RetrievalConfig the trials override.
        fn_args: the Tuner's FnArgs (train/eval files, transform graph, step cap).
        **kwargs: BaseTuner's directory, project_name, overwrite.
    """

    def __init__(self, oracle, config, fn_args, **kwargs):
        super().__init__(oracle=oracle, **kwargs)
        self.config, self.fn_args = config, fn_args
        path = fn_args.transform_graph_path or fn_args.transform_output
        self.tft_output = tft.TFTransformOutput(path)
        self.num_items = data.vocab_sizes(self.tft_output)[F.ITEM_ID] - F.ITEM_OOV_BUCKETS
        self.seen = seen_items(fn_args.train_files, self.tft_output)
        self.done = 0

    def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
        """Trains one configuration; returns {OBJECTIVE: ..., HIT_RATE: ...}."""
        config = apply_hyperparameters(self.config, trial.hyperparameters)
        started = time.perf_counter()
        tf_keras.backend.clear_session()
        model, info = train_model(config, self.fn_args, self.tft_output)
        evaluation = trainer.positives_dataset(
            self.fn_args.eval_files, self.tft_output, config, info["counts"], training=False
        )
        metrics = evaluate(model, evaluation, self.seen, self.num_items, TOP_K)
        self.done += 1
        print(
            f"trial {self.done}/{self.oracle.max_trials} {trial.hyperparameters.values}: "
            f"ndcg@{TOP_K} {metrics[OBJECTIVE]:.4f}, hr@{TOP_K} {metrics[HIT_RATE]:.4f} "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        return metrics

    def on_search_end(self):
        """Fails with the trials' errors when no trial completed (nothing to hand on)."""
        trials = list(self.oracle.trials.values())
        done = [t for t in trials if t.status == "COMPLETED"]
        if not done:
            errors = "\n".join(f"{t.trial_id}: {t.message}" for t in trials if t.message)
            raise RuntimeError(f"retrieval tuner: no trial completed.\n{errors}")
        best = max(done, key=lambda t: t.score)
        line = f"best trial {best.hyperparameters.values}: ndcg@{TOP_K} {best.score:.4f}"
        if self.oracle.baseline and trials[0].status == "COMPLETED":
            base = trials[0].score
            line += f" vs {base:.4f} as configured ({best.score - base:+.4f})"
        print(line, flush=True)


def tuner_fn(fn_args) -> TunerFnResult:
    """Builds the tuner (TFX generic Tuner entry point).

    Args:
        fn_args: tfx FnArgs: train_files, eval_files, transform_graph_path,
            train_steps (caps each trial), working_dir, custom_config =
            {"retrieval": RetrievalConfig.to_dict(), TUNING_KEY: SearchSpace.to_dict()}.

    Returns:
        TunerFnResult(tuner=RetrievalTuner, fit_kwargs={}): the trials read their data
        from fn_args themselves.
    """
    config = trainer.config_from_custom(fn_args.custom_config)
    space = SearchSpace.from_dict((fn_args.custom_config or {}).get(TUNING_KEY))
    space.check(config)
    if not fn_args.eval_files:
        raise ValueError("the Tuner needs an eval split: its objective is measured there")
    hp = kt.HyperParameters()
    space.declare(hp)
    oracle = BaselineFirstOracle(
        baseline_values(config, space),
        objective=kt.Objective(OBJECTIVE, direction="max"),
        max_trials=space.max_trials,
        seed=space.seed,
        hyperparameters=hp,
        allow_new_entries=False,
        tune_new_entries=False,
    )
    tuner = RetrievalTuner(
        oracle,
        config,
        fn_args,
        directory=os.path.join(fn_args.working_dir or ".", "keras_tuner"),
        project_name="two_tower",
        overwrite=True,
    )
    return TunerFnResult(tuner=tuner, fit_kwargs={})
