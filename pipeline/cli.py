"""The command line: `python -m pipeline run --runner local|beam --data SOURCE[:PATH]`.

Examples:
    python -m pipeline run                                   # synthetic, default size
    python -m pipeline run --data synthetic:tiny --runner beam
    python -m pipeline run --data movielens-100k:../shared/data/ml-100k
    python -m pipeline run --data csv:/data/shop \\
        --column-mapping '{"interactions": {"user_id": "customer", "item_id": "sku"}}'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

from components.behavior_sequence_gen.sequences import LEAVE_LAST_OUT, TIME_CUTOFF, SequenceConfig
from models.ranking.config import RankingConfig
from models.retrieval.config import LOSSES, RetrievalConfig
from models.retrieval.hyperparameters import SearchSpace
from pipeline import config as C
from pipeline import kfp_cli
from schemas.serving import PORTABLE

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_data(spec: str, work_dir: str, seed: int) -> tuple[str, str]:
    """`synthetic[:SIZE]`, `movielens-100k:PATH`, `movielens-1m:PATH` or `csv:PATH`."""
    source, _, arg = spec.partition(":")
    if source == C.SYNTHETIC:
        from pipeline.sources import synthetic

        size = arg or "default"
        if size not in synthetic.SIZES:
            raise ValueError(f"--data synthetic:{size}: sizes are {sorted(synthetic.SIZES)}")
        path = os.path.join(work_dir, "data", f"synthetic-{size}-seed{seed}")
        synthetic.ensure_synthetic(path, size, seed=seed)
        return source, path
    if source not in C.SOURCES:
        raise ValueError(f"--data {spec!r}: the source must be one of {C.SOURCES}")
    if not arg:
        raise ValueError(f"--data {source}: give the directory, e.g. --data {source}:/path/to/dir")
    return source, os.path.abspath(arg)


def run_directory(work_dir: str, data: str) -> str:
    """Where a run on `data` keeps its pipeline root, MLMD and summary.json."""
    source, _, arg = data.partition(":")
    tag = f"{source}-{os.path.basename(os.path.normpath(arg))}" if arg else source
    return os.path.join(os.path.abspath(work_dir), "runs", tag)


def build_config(args: argparse.Namespace) -> C.PipelineConfig:
    """Turns parsed arguments into a validated PipelineConfig."""
    work_dir = os.path.abspath(args.work_dir)
    source, path = parse_data(args.data, work_dir, args.seed)
    data = C.DataConfig(
        source=source,
        path=path,
        column_mapping=json.loads(args.column_mapping),
        delimiter=args.delimiter,
        interaction_span=args.span,
    )
    sequences = SequenceConfig(
        history_length=args.history_length,
        rating_threshold=None if args.implicit else args.rating_threshold,
        negative_ratio=args.negative_ratio,
        split=args.split,
        cutoff_timestamp=args.cutoff,
        seed=args.seed,
        max_events_per_user=args.max_events_per_user or None,
    )
    run_dir = run_directory(work_dir, args.data)
    retrieval = RetrievalConfig().with_overrides(loss=args.retrieval_loss, mode=args.update)
    return C.PipelineConfig(
        data=data,
        sequences=sequences,
        retrieval=retrieval,
        ranking=dataclasses.replace(RankingConfig(), mode=args.update),
        train_steps=args.train_steps,
        ranking_min_auc=args.ranking_min_auc,
        name=args.name,
        pipeline_root=os.path.join(run_dir, "pipeline_root"),
        metadata_path=os.path.join(run_dir, "metadata.sqlite"),
        beam_pipeline_args=tuple(args.beam_arg),
        enable_cache=not args.no_cache,
        serving_dir=os.path.abspath(args.serving_dir or os.path.join(work_dir, "serving")),
        model_name=args.model_name,
        tuning=SearchSpace(max_trials=args.tune_trials) if args.tune else None,
        item_vocabulary_size=args.item_vocabulary_size,
        transform_materialize=args.materialize_transform,
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show every TF/absl log line and warning (python -m pipeline reads it anywhere "
        "on the command line, before TF is imported)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the pipeline and print a summary")
    run.add_argument("--runner", choices=("local", "beam"), default="local")
    run.add_argument(
        "--workers",
        type=int,
        default=C.LOCAL_WORKERS,
        help="local runner: components run at once, each in its own worker process "
        "(1: TFX's LocalDagRunner, one at a time in this process)",
    )
    run.add_argument(
        "--data",
        default="synthetic",
        help="synthetic[:tiny|small|default] | movielens-100k:PATH | "
        "movielens-1m:PATH | csv:PATH",
    )
    run.add_argument("--work-dir", default=".work", help="pipeline root, MLMD, generated data")
    run.add_argument("--name", default="recsys")
    run.add_argument(
        "--column-mapping", default="{}", help="JSON {table: {canonical: your_column}}"
    )
    run.add_argument("--delimiter", default=",")
    run.add_argument("--span", type=int, help="the span of interactions to read (default: latest)")
    run.add_argument("--history-length", type=int, default=SequenceConfig.history_length)
    run.add_argument("--rating-threshold", type=float, default=SequenceConfig.rating_threshold)
    run.add_argument("--implicit", action="store_true", help="every event is positive")
    run.add_argument("--negative-ratio", type=int, default=SequenceConfig.negative_ratio)
    run.add_argument(
        "--item-vocabulary-size",
        type=int,
        help="keep the N most frequent items; the rest share the OOV buckets (default: all)",
    )
    run.add_argument(
        "--materialize-transform",
        action="store_true",
        help="Transform writes transformed examples and the trainers read them (default: "
        "the trainers transform BehaviorSequenceGen's examples themselves)",
    )
    run.add_argument(
        "--max-events-per-user",
        type=int,
        default=SequenceConfig.max_events_per_user,
        help="keep each user's most recent N events, drop older ones (0: keep all)",
    )
    run.add_argument("--split", choices=(LEAVE_LAST_OUT, TIME_CUTOFF), default=LEAVE_LAST_OUT)
    run.add_argument("--cutoff", type=int, help="timestamp of the global cutoff (time_cutoff)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        help="a Beam pipeline arg, e.g. --beam-arg=--runner=FlinkRunner (repeatable)",
    )
    run.add_argument("--no-cache", action="store_true")
    run.add_argument(
        "--train-steps",
        type=int,
        default=0,
        help="cap each trainer's steps (0: the model configs' epochs)",
    )
    run.add_argument("--retrieval-loss", default=RetrievalConfig().loss.NAME, choices=LOSSES)
    run.add_argument(
        "--ranking-min-auc",
        type=float,
        default=C.PipelineConfig.ranking_min_auc,
        help="the ranker is blessed only at or above this eval AUC",
    )
    run.add_argument(
        "--update",
        choices=("full", "incremental"),
        default="full",
        help="full: warm start from the latest blessed model, one pass; "
        "incremental: train only the id embeddings on the newest span",
    )
    run.add_argument(
        "--serving-dir",
        help="the Pusher writes <serving-dir>/<model-name>/<version>/ "
        "(default: <work-dir>/serving)",
    )
    run.add_argument("--model-name", default="recommender", help="the served model's name")
    run.add_argument(
        "--tune",
        action="store_true",
        help="run TFX's Tuner (KerasTuner random search over embedding_dim, temperature, "
        "epochs, learning_rate) and train the two-tower with its best hyperparameters",
    )
    run.add_argument(
        "--tune-trials",
        type=int,
        default=SearchSpace.max_trials,
        help="--tune: trials of the search (each trains one two-tower model)",
    )
    run.add_argument("--until", help="run only this component and what it needs, e.g. Transform")
    kfp_cli.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "kfp":
        return kfp_cli.main(args)
    if args.command == "run" and args.workers < 1:
        print(f"error: --workers {args.workers}: need at least 1", file=sys.stderr)
        return 2
    try:
        config = build_config(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # Beam worker processes import the project's modules by dotted path.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])
    )
    from pipeline import beam_runner, local_runner, summary

    print(
        f"Running '{config.name}' with the {args.runner} runner on {args.data} "
        f"(artifacts under {config.pipeline_root}) ...",
        flush=True,
    )
    start = time.time()
    if args.runner == "beam":
        beam_runner.run(config, args.until)
    else:
        local_runner.run(config, args.until, workers=args.workers)
    result = summary.collect(config)
    result["wall_s"] = round(time.time() - start, 1)
    with open(os.path.join(os.path.dirname(config.pipeline_root), "summary.json"), "w") as f:
        json.dump(result, f, indent=2)
    print("\n" + summary.render(result, config) + f"\n  wall time: {result['wall_s']} s")
    if result.get("push", {}).get("pushed"):
        from pipeline import showcase

        base = os.path.dirname(result["push"]["destinations"][PORTABLE])
        print("\n" + showcase.show(base, result["assembly"]["uri"]))
        print(f"\nServe it: make serve MODEL_BASE_PATH={base}")
    return 0
