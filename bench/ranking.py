"""BENCHMARKS B2: DIN vs the base DNN (mean-pooled history) and Dice vs PReLU on ML-100K.

Runs the data stages (ExampleGens -> BehaviorSequenceGen -> validation -> Transform; the
pipeline's leave-last-out split, cached in the work dir after the first run), transforms the
examples once into memory (bench/ranking_data.py), cuts a validation set out of the training
split, then trains each model with 3 seeds and the same budget (at most `epochs`, early
stopping on the validation AUC) and evaluates the kept epoch on the eval split: AUC, GAUC
(user-weighted AUC), RelaImpr = (AUC(model) - 0.5) / (AUC(dnn) - 0.5) - 1 and training
examples/s. Writes bench/results/ranking.json and ranking.png; prints a table last.

    python -m bench.ranking [--quick] [--data PATH] [--seeds N] [--epochs E] [--set k=v] [--replot]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

from bench import ranking_data as D
from schemas import features as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results")
DEFAULT_ML100K = os.path.join(REPO, "..", "shared", "data", "ml-100k")
DATASET = "ml-100k"
# The three systems: overrides of the shared benchmark config (same budget for all).
# DIN's attention weights are softmax-normalised over the valid history positions (the
# RankingConfig option; chosen on the validation cut: AUC 0.801 vs 0.797 unnormalised).
MODELS = {
    "din": {"attention_softmax": True},
    "dnn": {"pooling": "mean"},
    "din_prelu": {"attention_softmax": True, "activation": "prelu"},
}
BASE = "dnn"
# Shared hyperparameters, the same search for DIN and the DNN; epochs is the budget cap,
# early stopping on the validation cut (PATIENCE epochs without a better AUC) ends sooner.
BENCH_CONFIG = {"epochs": 6, "batch_size": 1024, "learning_rate": 3e-3, "mba_lambda": 0.01}
PATIENCE = 1
# The data stages' options (pipeline/cli.py): the pipeline's defaults, stated explicitly.
DATA_OPTIONS = ["--rating-threshold", "4", "--negative-ratio", "2", "--split", "leave_last_out"]
PROTOCOL = (
    "leave-last-out (B1's split): per user, the last interaction rated >= 4 is the eval "
    "target, with the pipeline's sampled negatives (p ~ count^0.75, items the user had not "
    "rated at or before the event's time); training examples are the earlier events "
    "(rating >= 4 positive, < 4 negative) "
    "and their sampled negatives. Validation (early stopping) is cut the same way from "
    "training: each user's last positive moment; later training events are dropped."
)


def relaimpr(auc: float, base_auc: float) -> float:
    """RelaImpr = (AUC - 0.5) / (AUC_base - 0.5) - 1 (DIN paper, eq. 10)."""
    return (auc - 0.5) / (base_auc - 0.5) - 1.0


def data_stages(ml100k: str, work_dir: str):
    """Runs the data stages up to Transform (cached by MLMD).

    Returns:
        (Transform's graph dir, BehaviorSequenceGen's examples dir).
    """
    from pipeline import cli

    argv = ["run", "--data", f"movielens-100k:{ml100k}", "--work-dir", work_dir]
    argv += ["--until", "Transform", *DATA_OPTIONS]
    if cli.main(argv) != 0:
        raise SystemExit("the data stages failed")
    root = cli.build_config(cli._parser().parse_args(argv)).pipeline_root

    def latest(*parts):
        return sorted(glob.glob(os.path.join(root, *parts, "*")), key=os.path.getmtime)[-1]

    return latest("Transform", "transform_graph"), latest("BehaviorSequenceGen", "examples")


def run_one(name: str, config, splits: dict, sizes: dict, counts: dict, patience: int) -> dict:
    """Trains one model in memory, early-stopped on the validation cut; returns its metrics.

    Every epoch evaluates the validation cut and the eval split; the reported eval metrics
    are those of the epoch with the best validation AUC (eval never selects anything).
    """
    from models.ranking.model import build_model
    from models.ranking.trainer import evaluate, predictor

    steps = len(splits["fit"][F.LABEL]) // config.batch_size
    model = build_model(config, sizes, counts, total_steps=steps * config.epochs)
    predict = predictor(model)
    data = D.batches(splits["fit"], config.batch_size, seed=config.seed)
    val_ds, eval_ds = (D.batches(splits[s], 4096) for s in ("validation", "eval"))
    curve, best, stale = [], None, 0
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        logs = model.fit(data, epochs=1, verbose=0).history
        seconds = time.perf_counter() - start
        val = evaluate(model, val_ds, predict=predict)
        ev = evaluate(model, eval_ds, predict=predict)
        curve.append(
            {"epoch": epoch, "loss": logs["bce"][-1], "seconds": seconds,
             "examples_per_second": steps * config.batch_size / seconds,
             "val_auc": val["auc"], "eval_auc": ev["auc"], "eval_gauc": ev["gauc"]}
        )  # fmt: skip
        print(
            f"  {name} seed {config.seed} epoch {epoch}: loss {curve[-1]['loss']:.4f} "
            f"val AUC {val['auc']:.4f} (eval AUC {ev['auc']:.4f}) "
            f"{curve[-1]['examples_per_second']:,.0f} examples/s",
            flush=True,
        )
        if best is None or val["auc"] > best[1]["auc"]:
            best, stale = (epoch, val, ev), 0
        else:
            stale += 1
            if stale >= patience:
                break
    epoch, val, ev = best
    steady = [c["examples_per_second"] for c in curve[1:]] or [curve[0]["examples_per_second"]]
    return {
        "seed": config.seed,
        **{k: ev[k] for k in ("auc", "gauc", "logloss", "examples", "gauc_users")},
        "best_epoch": epoch,
        "val_auc": val["auc"],
        "examples_per_second": float(np.median(steady)),  # epochs after the first (tracing)
        "epoch_seconds": float(np.median([c["seconds"] for c in curve])),
        "curve": curve,
    }


def _stats(values) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarize(runs: dict[str, list[dict]], config_dict: dict, protocol: dict) -> dict:
    """The JSON of BENCHMARKS B2 (extra per-model keys beside the required ones)."""
    out = {"protocol": protocol}
    base_aucs = [r["auc"] for r in runs[BASE]]
    for name, rs in runs.items():
        auc_m, auc_s = _stats([r["auc"] for r in rs])
        gauc_m, gauc_s = _stats([r["gauc"] for r in rs])
        paired = [relaimpr(r["auc"], b) for r, b in zip(rs, base_aucs, strict=True)]
        out[name] = {
            "auc_mean": auc_m,
            "auc_std": auc_s,
            "gauc_mean": gauc_m,
            "gauc_std": gauc_s,
            "logloss_mean": _stats([r["logloss"] for r in rs])[0],
            "relaimpr_vs_dnn": relaimpr(auc_m, _stats(base_aucs)[0]),
            "relaimpr_vs_dnn_per_seed": paired,
            "examples_per_second_median": float(np.median([r["examples_per_second"] for r in rs])),
            "epoch_seconds_median": float(np.median([r["epoch_seconds"] for r in rs])),
            "best_epochs": [r["best_epoch"] for r in rs],
            "config": {**config_dict, **MODELS[name]},
            "runs": rs,
        }
    out["din"]["relaimpr_vs_din_prelu"] = relaimpr(
        out["din"]["auc_mean"], out["din_prelu"]["auc_mean"]
    )
    return {DATASET: {**out, "relaimpr_din_vs_dnn": out["din"]["relaimpr_vs_dnn"]}}


def plot(results: dict, path: str) -> None:
    """Bars of AUC / GAUC (mean, std over seeds) and each run's validation-AUC curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = {k: v for k, v in results[DATASET].items() if k in MODELS}
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(models))
    for i, metric in enumerate(("auc", "gauc")):
        means = [m[f"{metric}_mean"] for m in models.values()]
        stds = [m[f"{metric}_std"] for m in models.values()]
        bars.bar(x + (i - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=4, label=metric.upper())
    lo = min(m["gauc_mean"] for m in models.values()) - 0.03
    bars.set_ylim(lo, max(m["auc_mean"] for m in models.values()) + 0.02)
    bars.set_xticks(x, list(models))
    bars.set_title("eval AUC / GAUC (mean, std over seeds)")
    bars.legend()
    for i, (name, m) in enumerate(models.items()):
        for j, r in enumerate(m["runs"]):  # runs stop at different epochs
            val = [c["val_auc"] for c in r["curve"]]
            label = name if j == 0 else None
            curves.plot(np.arange(1, len(val) + 1), val, "o-", color=f"C{i}", label=label)
            curves.plot([r["best_epoch"]], [r["val_auc"]], "k*")
    curves.set_xlabel("epoch (* = kept, early stopping)")
    curves.set_ylabel("validation AUC (each seed)")
    curves.grid(alpha=0.3)
    curves.legend()
    fig.suptitle("B2: DIN vs base DNN on ML-100K")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results: dict, seeds: int) -> str:
    """The short table printed last."""
    r = results[DATASET]
    p = r["protocol"]
    ev = p["splits"]["eval"]
    lines = [
        f"B2 ranking on ML-100K, {p['name']}: {seeds} seed(s); eval {ev['examples']:,} examples "
        f"({ev['positives']} targets + sampled negatives), GAUC over "
        f"{r['din']['runs'][0]['gauc_users']} users; at most {p['max_epochs']} epochs, early "
        f"stopping on a validation cut of train ({p['splits']['validation']['examples']:,})",
        f"{'model':<10} {'AUC mean±std':>17} {'GAUC mean±std':>17} {'RelaImpr':>9} "
        f"{'examples/s':>11} {'s/epoch':>8} {'epochs':>8}",
    ]
    for name in MODELS:
        m = r[name]
        lines.append(
            f"{name:<10} {m['auc_mean']:>9.4f}±{m['auc_std']:.4f} "
            f"{m['gauc_mean']:>9.4f}±{m['gauc_std']:.4f} {m['relaimpr_vs_dnn']:>+8.2%} "
            f"{m['examples_per_second_median']:>11,.0f} {m['epoch_seconds_median']:>8.1f} "
            f"{','.join(map(str, m['best_epochs'])):>8}"
        )
    verdict = "met" if r["relaimpr_din_vs_dnn"] >= 0.02 else "NOT met"
    lines.append(
        f"RelaImpr DIN vs DNN {r['relaimpr_din_vs_dnn']:+.2%} (target >= +2%: {verdict}); "
        f"DIN (Dice) vs DIN (PReLU) {r['din']['relaimpr_vs_din_prelu']:+.2%}"
    )
    return "\n".join(lines)


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a bare string, e.g. activation=prelu
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 seed, 2 epochs")
    p.add_argument("--data", default=DEFAULT_ML100K, help="the ML-100K directory")
    p.add_argument("--work-dir", default=os.path.join(REPO, ".work", "bench-ranking"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int)
    p.add_argument("--set", action="append", default=[], help="config override, e.g. dropout=0.1")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    p.add_argument("--replot", action="store_true", help="redraw PNG + table from the JSON")
    return p


def run_all(names, shared: dict, seeds: int, splits: dict, sizes: dict) -> dict:
    """{model: [run per seed]}; seeds outermost, so the models share load conditions."""
    from models.ranking.config import RankingConfig
    from models.ranking.model import feature_counts

    counts = feature_counts(D.batches(splits["fit"], 8192), sizes)
    runs = {name: [] for name in names}
    for seed in range(seeds):
        for name in names:
            config = RankingConfig.from_dict({**shared, **MODELS[name], "seed": seed})
            print(f"--- {name} seed {seed}", flush=True)
            runs[name].append(run_one(name, config, splits, sizes, counts, PATIENCE))
    return runs


def main(argv=None) -> int:
    """Runs B2; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.replot:
        with open(os.path.join(RESULTS, "ranking.json")) as f:
            results = json.load(f)
        plot(results, os.path.join(RESULTS, "ranking.png"))
        print(table(results, len(results[DATASET]["din"]["runs"])))
        return 0
    if not os.path.exists(os.path.join(args.data, "u.data")):
        print(
            f"ML-100K not found at {os.path.abspath(args.data)}: skipping B2 (download it "
            "from GroupLens there; it must not be committed)"
        )
        return 0
    import tensorflow_transform as tft

    from models.common.data import vocab_sizes

    graph, examples = data_stages(os.path.abspath(args.data), args.work_dir)
    tft_output = tft.TFTransformOutput(graph)
    splits = D.prepare(tft_output, examples)
    shared = {**BENCH_CONFIG, **_overrides(args.set)}
    if args.epochs or args.quick:
        shared["epochs"] = args.epochs or 2
    seeds = 1 if args.quick else args.seeds
    names = [n for n in args.models.split(",") if n in MODELS]
    runs = run_all(names, shared, seeds, splits, vocab_sizes(tft_output))
    if set(names) != set(MODELS):  # a subset: print the runs only
        print(json.dumps({n: [[r["auc"], r["gauc"], r["best_epoch"]] for r in rs]
                          for n, rs in runs.items()}))  # fmt: skip
        return 0
    protocol = {
        "name": "leave-last-out, sampled negatives",
        "description": PROTOCOL,
        "data_options": DATA_OPTIONS,
        "splits": D.describe(splits),
        "max_epochs": shared["epochs"],
        "patience": PATIENCE,
    }
    results = summarize(runs, shared, protocol)
    os.makedirs(RESULTS, exist_ok=True)
    tmp = os.path.join(RESULTS, "ranking.json.tmp")
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, os.path.join(RESULTS, "ranking.json"))
    plot(results, os.path.join(RESULTS, "ranking.png"))
    print("\n" + table(results, seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
