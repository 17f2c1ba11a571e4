"""BENCHMARKS B1: retrieval quality of MostPopular, EASE^R and the two-tower, same split.

Per dataset (ML-100K, synthetic default): runs the pipeline's data stages (cached by
MLMD in the work dir), reads its leave-last-out split (each user's last rating >= 4
event is the target; only earlier events train), cuts a validation split the same
way from the training events, tunes the baselines on it (EASE^R lambda and whether
X holds all rated events or positives only; MostPopular's event set), trains the
two-tower with its `run_fn` (config defaults, seed 0), and ranks the whole catalog
for every query with earlier items excluded. Writes bench/results/retrieval.json
and retrieval.png (Recall@K per system); prints a table last.

    python -m bench.retrieval [--quick] [--datasets ml-100k,synthetic] [--set key=value]
                              [--ablation]   # + log-Q off and each loss family, validation
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from typing import NamedTuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results")
DEFAULT_ML100K = os.path.join(REPO, "..", "shared", "data", "ml-100k")
DATASETS = ("ml-100k", "synthetic")
REQUIRED = ("hr@10", "ndcg@10", "hr@50", "hr@100", "coverage@10")
# The combined SavedModel rows (two-tower top-100 -> DIN rerank; bench/retrieval_served.py).
SERVED = {"served": "portable", "served_scann": "scann"}
PENDING = ()  # rows still written as null
SERVED_NOTE = (
    "combined SavedModel (models.serving.export.export_variant, k=n=100): two-tower top-100 "
    "-> DIN rerank (RankingConfig defaults, trained with run_fn on the same transformed "
    "training files), ordered by the final score log(DIN probability) + retrieval score / "
    "the two-tower's softmax temperature (AssemblyConfig.retrieval_weight=None) + log q(item), "
    "q the DIN's negative sampler, count ** 0.75 (AssemblyConfig.log_q_weight=1); queried "
    "through serving_default in batches of 128. The model removes "
    "the request's history window only; B1's larger exclusion set (every earlier item, never "
    "the target) is then dropped from the returned list, leaving empty slots, so the same "
    "items are excluded as for the other rows. served_scann forces ScaNN on this small "
    "catalog (IndexConfig(exact_below=0)); served uses the portable (exact) searcher."
)
# B1 targets vs the stronger EASE^R (the better of ease_all / ease_positive per metric):
TARGETS = {"served": 1.10, "served_scann": 1.10, "two_tower": 1.0}


def pipeline_data(dataset: str, ml100k: str, work_dir: str, pipeline_args=()):
    """Runs the data stages (cached) and returns (pipeline root, SequenceConfig).
    `pipeline_args`: more `python -m pipeline run` flags, e.g. ("--history-length", "50");
    give such a run its own work_dir (the harness reads the latest artifacts under it)."""
    from pipeline import cli

    spec = f"movielens-100k:{os.path.abspath(ml100k)}" if dataset == "ml-100k" else "synthetic"
    argv = ["run", "--data", spec, "--work-dir", work_dir, "--until", "Transform"]
    argv += list(pipeline_args)
    print(f"=== {dataset}: data stages ({' '.join(argv)})", flush=True)
    if cli.main(argv) != 0:
        raise SystemExit(f"the data stages failed on {dataset}")
    config = cli.build_config(cli._parser().parse_args(argv))
    return config.pipeline_root, config.sequences


def add_validation_args(p: argparse.ArgumentParser, dataset: str) -> None:
    """The data flags of the validation harnesses (tune, rerank, prior, channels, i2i)."""
    p.add_argument("--dataset", default=dataset, choices=DATASETS)
    p.add_argument("--data", default=DEFAULT_ML100K)
    p.add_argument("--work-dir", default=os.path.join(REPO, ".work", "bench-retrieval"))
    p.add_argument(
        "--pipeline-args",
        default="",
        help="more flags for the data stages' pipeline run, e.g. '--history-length 50' "
        "(with a --work-dir of their own)",
    )


class Validation(NamedTuple):
    """The B1 validation split of one data-stages run, and where it came from."""

    split: object  # retrieval_systems.Split
    graph: str  # the transform graph dir
    out_dir: str  # the run's bench dir (scratch for the harnesses)
    root: str  # the pipeline root
    sequences: object  # the run's SequenceConfig


def validation_split(args: argparse.Namespace) -> Validation:
    """The validation split of the data stages that `add_validation_args`' flags name
    (run, or taken from the cache)."""
    pipeline_args = shlex.split(args.pipeline_args)
    root, seq_cfg = pipeline_data(args.dataset, args.data, args.work_dir, pipeline_args)
    out_dir = os.path.join(os.path.dirname(root), "bench")
    _, validation, graph = build_splits(root, seq_cfg, out_dir)
    return Validation(validation, graph, out_dir, root, seq_cfg)


def build_splits(root: str, seq_cfg, out_dir: str):
    """(test Split, validation Split, transform graph dir) of one pipeline run."""
    import tensorflow_transform as tft

    from bench import retrieval_data as D
    from bench import retrieval_systems as S
    from models.common import examples as X
    from schemas import features as F

    arts = D.Artifacts.locate(root)
    catalog = D.examples_artifact(arts.catalog)
    test_data = X.load_eval_data(D.examples_artifact(arts.examples), catalog)
    item_ids = [i.decode() for i in test_data.candidates[F.ITEM_ID]]
    events = D.user_events(arts.interactions, item_ids, seq_cfg)
    train_glob = os.path.join(arts.examples, "Split-train", "*")  # raw, as the pipeline trains
    test = S.Split(
        "test",
        test_data,
        S.query_users(test_data),
        item_ids,
        events,
        D.target_cutoffs(events),
        train_glob,
        ranker_train_files=train_glob,
        ranker_eval_files=os.path.join(arts.examples, "Split-eval", "*"),
    )
    paths = D.write_validation_split(arts, out_dir, tft.TFTransformOutput(arts.transform_graph))
    val_data = X.load_eval_data(D.examples_artifact(paths["raw"]), catalog)
    validation = S.Split(
        "validation",
        val_data,
        S.query_users(val_data),
        item_ids,
        events,
        D.validation_cutoffs(events),
        paths[D.TRAIN],
        ranker_train_files=paths[D.RANKER_TRAIN],
        ranker_eval_files=paths[D.RANKER_EVAL],
    )
    return test, validation, arts.transform_graph


def run_system(name: str, system, split) -> dict:
    """Runs one system on a split; its metrics, Recall@K curve, extras and wall time."""
    from bench import retrieval_systems as S

    print(f"--- {name} on the {split.name} split ({len(split.query_users):,} queries)", flush=True)
    start = time.perf_counter()
    top, extras = system(split)
    wall = time.perf_counter() - start
    result = S.evaluate_top(top, split.data.targets, len(split.item_ids))
    m = result["metrics"]
    print(f"    HR@10 {m['hr@10']:.4f}  NDCG@10 {m['ndcg@10']:.4f}  ({wall:.1f} s)", flush=True)
    return {**m, "recall_curve": result["recall_curve"], "wall_s": wall, **extras}


def run_dataset(dataset: str, args, retrieval_config) -> tuple[dict, dict]:
    """(the dataset's system rows, details: split sizes, validation grids, seeds, ablation)."""

    from bench import retrieval_served as V
    from bench import retrieval_systems as S
    from bench import retrieval_tune

    root, seq_cfg = pipeline_data(dataset, args.data, args.work_dir)
    out_dir = os.path.join(os.path.dirname(root), "bench")
    test, validation, graph = build_splits(root, seq_cfg, out_dir)
    print("tuning the baselines on the validation split", flush=True)
    mp_positives, mp_grid = S.tune_most_popular(validation)
    ease_best, ease_pick, ease_grid = S.tune_ease(validation)
    systems = {"most_popular": S.most_popular(mp_positives)}
    for events, name in EASE_ROWS.items():
        systems[name] = S.ease(ease_best[events]["lambda"], ease_best[events]["positives_only"])
    rows = {name: run_system(name, system, test) for name, system in systems.items()}
    rows["ease"] = rows[EASE_ROWS[ease_pick]]
    per_seed: dict[str, list[dict]] = {}
    for seed in args.seeds:
        config = retrieval_config.with_overrides(seed=seed)
        seed_dir = os.path.join(out_dir, f"seed-{seed}")
        trained = {"two_tower": S.two_tower(config, graph, seed_dir)}  # first: served reuses it
        models = V.ServedModels(graph, root, seed_dir, seed=seed, sequences=seq_cfg)
        trained |= {name: V.served(models, variant) for name, variant in SERVED.items()}
        for name, system in trained.items():
            print(f"=== {dataset} seed {seed}", flush=True)
            per_seed.setdefault(name, []).append(run_system(name, system, test))
    rows |= {name: seed_mean(runs, args.seeds) for name, runs in per_seed.items()}
    rows.update(dict.fromkeys(PENDING))
    details = {
        "queries": {"test": len(test.query_users), "validation": len(validation.query_users)},
        "catalog_items": len(test.item_ids),
        "validation": {"most_popular": mp_grid, "ease": ease_grid},
        "ease_validation_best": {EASE_ROWS[e]: _short(b) for e, b in ease_best.items()},
        "ease_pick": EASE_ROWS[ease_pick],
        "served": SERVED_NOTE,
    }
    if args.ablation and dataset == "ml-100k":
        tower = S.two_tower(retrieval_config, graph, out_dir)
        base = run_system("two_tower", tower, validation)
        details["ablation"] = {"base": {"overrides": {}, **{k: base[k] for k in REQUIRED}}}
        details["ablation"] |= retrieval_tune.ablation(validation, graph, out_dir, retrieval_config)
    return rows, details


EASE_ROWS = {"rated": "ease_all", "positive": "ease_positive"}  # X's event set -> B1 row


def _short(row: dict) -> dict:
    return {k: row[k] for k in ("lambda", "events", "hr@10", "ndcg@10")}


def seed_mean(runs: list[dict], seeds: list[int]) -> dict:
    """One B1 row from a system's per-seed rows: the mean of every metric, the population
    std of HR@10 and NDCG@10 beside them (`"hr@10_std"`), and each seed's own figures."""
    import numpy as np

    metrics = [k for k, v in runs[0].items() if k.startswith(("hr@", "ndcg@", "coverage@"))]
    row = {k: float(np.mean([r[k] for r in runs])) for k in metrics}
    for k in ("hr@10", "ndcg@10"):
        row[f"{k}_std"] = float(np.std([r[k] for r in runs]))
    row["recall_curve"] = np.mean([r["recall_curve"] for r in runs], axis=0).tolist()
    row["seeds"] = [
        {k: r[k] for k in ("hr@10", "ndcg@10", "hr@100") if k in r} | {"seed": seed}
        for seed, r in zip(seeds, runs, strict=True)
    ]
    row["per_seed_extras"] = [{k: v for k, v in r.items() if k not in row} for r in runs]
    for key in ("train_s", "examples_per_sec"):
        if all(key in r for r in runs):
            row[key] = float(np.mean([r[key] for r in runs]))
    return row


def _previous(datasets: list[str]) -> dict:
    """The last full run's rows and details of the datasets not run now (kept in the JSON)."""
    path = os.path.join(RESULTS, "retrieval.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        old = json.load(f)
    keep = [d for d in DATASETS if d not in datasets and d in old]
    details = {d: old["details"][d] for d in keep if d in old.get("details", {})}
    for d in keep:
        if any(old[d].get(name) is None for name in SERVED):
            details.setdefault(d, {})["served"] = "not run yet (null rows)"
    return {d: old[d] for d in keep} | {"details": details}


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 two-tower epoch")
    p.add_argument("--data", default=DEFAULT_ML100K, help="the ML-100K directory")
    p.add_argument("--work-dir", default=os.path.join(REPO, ".work", "bench-retrieval"))
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset")
    p.add_argument("--set", action="append", default=[], help="RetrievalConfig override k=v")
    p.add_argument(
        "--seeds",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[0, 1, 2],
        help="trainer seeds of the trained systems (two-tower, DIN); rows are their mean",
    )
    p.add_argument(
        "--ablation",
        action="store_true",
        help="also train the two-tower and its ablation variants on the ML-100K validation split",
    )
    return p


def main(argv=None) -> int:
    """Runs B1; returns the exit code."""
    from bench import retrieval_report as R
    from models.retrieval.config import RetrievalConfig

    args = _parser().parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d in DATASETS]
    if "ml-100k" in datasets and not os.path.exists(os.path.join(args.data, "u.data")):
        print(
            f"ML-100K not found at {os.path.abspath(args.data)}: skipping it (download it "
            "from GroupLens there; it must not be committed)"
        )
        datasets.remove("ml-100k")
    overrides = _overrides(args.set) | ({"epochs": 1} if args.quick else {})
    if args.quick:
        args.seeds = args.seeds[:1]
    config = RetrievalConfig().with_overrides(overrides)
    results, details = _previous(datasets), {}
    for dataset in datasets:
        results[dataset], details[dataset] = run_dataset(dataset, args, config)
    results["details"] = (
        results.get("details", {})
        | details
        | {
            "two_tower_config": config.to_dict(),
            "seeds": {"two_tower": args.seeds, "din": args.seeds, "pipeline": 0},
            "quick": args.quick,
        }
    )
    os.makedirs(RESULTS, exist_ok=True)
    name = "retrieval_quick" if args.quick else "retrieval"
    R.write_json(results, os.path.join(RESULTS, f"{name}.json"))
    shown = [d for d in DATASETS if d in results]  # with the kept rows of datasets not run
    R.plot(results, shown, os.path.join(RESULTS, f"{name}.png"))
    print("\n" + R.table(results, shown, PENDING, TARGETS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
