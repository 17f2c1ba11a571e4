"""`run_fn` for TFX's generic Trainer, and `train`, which the benchmark reuses.

The Trainer passes the hyperparameters as custom_config={"ranking": RankingConfig.to_dict()}.
run_fn trains, evaluates AUC / GAUC / LogLoss on the eval split after every epoch, exports
the raw-feature SavedModel to serving_model_dir and writes `training_curve.png` and
`training_summary.json` to model_run_dir.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras

from models.common import distribute
from models.common.data import capped_epochs, make_dataset, vocab_sizes
from models.ranking import export, retrieved, warm_start
from models.ranking.config import FULL_UPDATE, INCREMENTAL, RankingConfig, from_custom_config
from models.ranking.gauc import auc, gauc
from models.ranking.model import RankingModel, build_model, compile_ranker, feature_counts
from schemas import features as F

SUMMARY_FILE = "training_summary.json"
CURVE_FILE = "training_curve.png"


@dataclasses.dataclass
class TrainResult:
    """What `train` returns: the fitted model and a JSON-safe summary."""

    model: RankingModel
    summary: dict


def predictor(model: RankingModel):
    """A compiled features -> probabilities [B] function (inference mode)."""
    return tf.function(lambda f: model(f, training=False), autograph=False, reduce_retracing=True)


def evaluate(
    model: RankingModel, dataset: tf.data.Dataset, steps: int | None = None, predict=None
) -> dict:
    """AUC, GAUC (by user), LogLoss and the example count of a transformed dataset.

    Args:
        model: the ranker.
        dataset: transformed examples (with F.LABEL and the user id).
        steps: evaluate at most this many batches.
        predict: `predictor(model)`, to reuse its trace across calls.
    """
    predict = predict or predictor(model)
    labels, probs, users = [], [], []
    for batch in dataset.take(steps) if steps else dataset:
        probs.append(predict(batch).numpy())
        labels.append(batch[F.LABEL].numpy().reshape(-1))
        users.append(batch[F.transformed_name(F.USER_ID)].numpy().reshape(-1))
    y, p, u = (np.concatenate(x) if x else np.zeros(0) for x in (labels, probs, users))
    q = np.clip(p, 1e-7, 1 - 1e-7)
    logloss = float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))) if len(y) else math.nan
    g, n_users = gauc(y, p, u)
    return {
        "auc": auc(y, p),
        "gauc": g,
        "gauc_users": n_users,
        "logloss": logloss,
        "examples": int(len(y)),
    }


class _Progress(tf_keras.callbacks.Callback):
    """Prints one line per epoch and records the curve; times training only."""

    def __init__(self, evaluate_fn, epochs: int, batch_size: int, log):
        super().__init__()
        self.evaluate_fn, self.epochs, self.batch_size = evaluate_fn, epochs, batch_size
        self.log = log
        self.history, self.train_seconds, self.examples = [], 0.0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.steps = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        self.train_seconds += seconds
        self.examples += self.steps * self.batch_size
        row = {
            "epoch": epoch + 1,
            "loss": float(logs["bce"]),
            "mba": float(logs.get("mba", 0.0)),
            "examples_per_second": self.steps * self.batch_size / max(seconds, 1e-9),
            **{f"eval_{k}": v for k, v in self.evaluate_fn().items()},
        }
        self.history.append(row)
        self.log(
            f"[ranking] epoch {epoch + 1}/{self.epochs}  loss {row['loss']:.4f}  "
            f"eval auc {row['eval_auc']:.4f} gauc {row['eval_gauc']:.4f} "
            f"logloss {row['eval_logloss']:.4f}  {row['examples_per_second']:,.0f} examples/s"
        )


def _warm_start(model, base_model: str | None, tft_output, log, incremental: bool) -> dict | None:
    """Warm-starts `model` (strictly for an incremental update: every id table must follow
    its ids) and, for an incremental update, freezes all but the id tables."""
    if not base_model:
        return None
    report = warm_start.warm_start(model, base_model, tft_output, strict=incremental)
    log(
        f"[ranking] warm start from {base_model}: {len(report['loaded'])} variables copied, "
        f"rows remapped {report['remapped']}, skipped {report['skipped']}"
        + (f", refused {report['refused']}" if report["refused"] else "")
    )
    if incremental:
        report["trainable_variables"] = warm_start.train_id_embeddings_only(model)
        log(f"[ranking] incremental update: training only {report['trainable_variables']}")
    return {"base_model": base_model, **report}


def training_data(config: RankingConfig, tft_output, train_files, sizes, repeat: bool, log=print):
    """The shuffled training batches, with retrieved negatives swapped in when the config
    names a retrieved file (models/ranking/retrieved.py); (dataset, report or None)."""
    data = make_dataset(
        train_files,
        tft_output,
        config.batch_size,
        num_epochs=None if repeat else 1,
        seed=config.seed,
    )
    if not config.retrieved_negatives_path:
        return data, None
    from models.retrieval.updates import load_mined_negatives

    lists = load_mined_negatives(
        config.retrieved_negatives_path, tft_output, config.retrieved_per_user
    )
    batches = make_dataset(train_files, tft_output, 4096, shuffle=False, num_epochs=1)
    table = retrieved.candidate_table(
        ({k: v.numpy() for k, v in b.items() if k in retrieved.TABLE_KEYS} for b in batches),
        sizes[F.ITEM_ID],
    )
    users = int((lists >= 0).any(axis=1).sum())
    report = {
        "path": config.retrieved_negatives_path,
        "share": config.retrieved_negative_share,
        "users_with_a_list": users,
        "mean_list_length": float((lists >= 0).sum() / max(users, 1)),
        "items_known_as_candidates": int(table.known.sum()),
    }
    log(
        f"[ranking] retrieved negatives: {users} users with a list (mean "
        f"{report['mean_list_length']:.1f} items), share {config.retrieved_negative_share:g}"
    )
    constant, seed = tf.constant(lists, tf.int64), tf.constant(config.seed, tf.int64)
    share = config.retrieved_negative_share
    data = data.enumerate().map(
        lambda i, f: retrieved.swap_in_retrieved(f, constant, table, share, tf.stack([seed, i])),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return data, report


def train(
    config: RankingConfig,
    tft_output: tft.TFTransformOutput,
    train_files,
    eval_files,
    train_steps: int | None = None,
    eval_steps: int | None = None,
    log=print,
    base_model: str | None = None,
) -> TrainResult:
    """Counts feature frequencies, builds the model, fits it and evaluates every epoch.

    Args:
        config: hyperparameters.
        tft_output: Transform's output.
        train_files, eval_files: globs of transformed, gzipped tf.Examples.
        train_steps: total training steps (spread over config.epochs); None runs
            config.epochs full passes over the training data.
        eval_steps: eval batches per evaluation; None evaluates the whole split.
        log: receives the progress lines.
        base_model: an exported ranker to warm-start from (when config.warm_start); with
            config.mode INCREMENTAL only its id tables then train, for one epoch.
    """
    sizes = vocab_sizes(tft_output)
    counting = make_dataset(train_files, tft_output, 1024, shuffle=False, num_epochs=1)
    counts = feature_counts(counting, sizes)
    n_train = int(counts[F.USER_ID].sum())
    base_model = base_model if config.warm_start else None
    incremental = config.mode == INCREMENTAL and bool(base_model)
    if config.mode == INCREMENTAL and not base_model:
        log("[ranking] mode=incremental without a base model: training every weight from scratch")
    epochs = 1 if incremental else capped_epochs(config.epochs, n_train, config.max_example_passes)
    if not incremental and epochs < config.epochs:
        log(
            f"[ranking] {n_train:,} training examples: {epochs} epoch(s) instead of "
            f"{config.epochs} (max_example_passes {config.max_example_passes:,})"
        )
    per_epoch = (
        max(1, math.ceil(train_steps / epochs))
        if train_steps
        else max(1, n_train // config.batch_size)  # the shuffled dataset drops the last batch
    )
    strategy = distribute.make_strategy(config.strategy)
    with strategy.scope():
        model = build_model(config, sizes, counts, compile_model=False)
        warm = _warm_start(model, base_model, tft_output, log, incremental)
        compile_ranker(model, total_steps=per_epoch * epochs)
    eval_ds = make_dataset(eval_files, tft_output, 1024, shuffle=False, num_epochs=1)
    predict = predictor(model)
    progress = _Progress(
        lambda: evaluate(model, eval_ds, eval_steps, predict), epochs, config.batch_size, log
    )
    # With train_steps the data repeats and each epoch is per_epoch steps; else full passes.
    data, retrieved_report = training_data(
        config, tft_output, train_files, sizes, repeat=bool(train_steps), log=log
    )
    data = distribute.shard_policy(data, strategy, distribute.file_count(train_files))
    model.fit(
        data,
        epochs=epochs,
        steps_per_epoch=per_epoch if train_steps else None,
        verbose=0,
        callbacks=[progress],
    )
    last = progress.history[-1]
    summary = {
        "config": config.to_dict(),
        "train_examples": n_train,
        "mode": INCREMENTAL if incremental else FULL_UPDATE,
        "epochs": epochs,
        "examples_trained": progress.examples,
        "train_seconds": progress.train_seconds,
        "examples_per_second": progress.examples / max(progress.train_seconds, 1e-9),
        "final_loss": last["loss"],
        "eval": {k[len("eval_") :]: v for k, v in last.items() if k.startswith("eval_")},
        "history": progress.history,
        "warm_start": warm,
        "retrieved_negatives": retrieved_report,
        "strategy": {"name": config.strategy, "replicas": strategy.num_replicas_in_sync},
    }
    return TrainResult(model, summary)


def plot_curve(history: list[dict], path: str, title: str = "DIN ranker") -> None:
    """Training loss / eval LogLoss and eval AUC / GAUC per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["loss"] for h in history], "o-", label="train BCE")
    left.plot(epochs, [h["eval_logloss"] for h in history], "s-", label="eval LogLoss")
    right.plot(epochs, [h["eval_auc"] for h in history], "o-", label="eval AUC")
    right.plot(epochs, [h["eval_gauc"] for h in history], "s-", label="eval GAUC")
    for ax, name in ((left, "loss"), (right, "AUC")):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (tfx.components.Trainer(run_fn="models.ranking.trainer.run_fn")).

    Args:
        fn_args: tfx FnArgs: train_files, eval_files, transform_output, serving_model_dir,
            model_run_dir, train_steps, eval_steps, custom_config ({"ranking": {...}})
            and base_model (the last blessed ranker's serving dir or None; see warm_start.py).
    """
    config = from_custom_config(fn_args.custom_config)
    distribute.make_strategy(config.strategy)  # multi_worker: before any TF op
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    print(f"[ranking] config: {json.dumps(config.to_dict(), sort_keys=True)}", flush=True)
    result = train(
        config,
        tft_output,
        fn_args.train_files,
        fn_args.eval_files,
        train_steps=fn_args.train_steps or None,
        eval_steps=fn_args.eval_steps or None,
        log=lambda line: print(line, flush=True),
        base_model=fn_args.base_model,
    )
    # Every worker exports (saving may run collectives); only the chief's files stay.
    with distribute.output_dir(fn_args.serving_model_dir) as serving_dir:
        export.export_serving_model(result.model, tft_output, serving_dir)
    with distribute.output_dir(fn_args.model_run_dir) as run_dir:
        tf.io.gfile.makedirs(run_dir)
        plot_curve(
            result.summary["history"],
            os.path.join(run_dir, CURVE_FILE),
            title=f"DIN ranker ({config.pooling} pooling, {config.activation})",
        )
        with tf.io.gfile.GFile(os.path.join(run_dir, SUMMARY_FILE), "w") as f:
            json.dump(result.summary, f, indent=2)
    s = result.summary
    print(
        f"[ranking] exported to {fn_args.serving_model_dir}; {s['examples_per_second']:,.0f} "
        f"examples/s, final loss {s['final_loss']:.4f}, eval AUC {s['eval']['auc']:.4f}, "
        f"GAUC {s['eval']['gauc']:.4f}",
        flush=True,
    )
