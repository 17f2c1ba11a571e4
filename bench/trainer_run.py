"""A trainer's run_fn alone, on a finished pipeline run's artifacts: wall and CPU seconds,
median of repeats, each run's epoch lines kept.

    python -m bench.trainer_run PIPELINE_ROOT [--trainer retrieval|ranking] [--repeats 3]

PIPELINE_ROOT is a run's pipeline_root (e.g. `python -m pipeline run --work-dir W` keeps
it under W/runs/<data>/pipeline_root): the latest BehaviorSequenceGen examples and
Transform graph in it are the trainer's inputs, as in the pipeline (its default config,
no base model). Each repeat runs in a fresh process, as the local runner's components do,
so TF's tracing and AutoGraph conversion are paid each time. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINERS = {"retrieval": "models.retrieval.trainer", "ranking": "models.ranking.trainer"}


def latest(root: str, pattern: str) -> str:
    """The artifact directory of the largest execution id matching root/pattern."""
    found = glob.glob(os.path.join(root, pattern))
    if not found:
        raise SystemExit(f"{root}: no {pattern} (a finished pipeline run's pipeline_root?)")
    return max(found, key=lambda p: int(os.path.basename(p)))


def _child(root: str, trainer: str, out: str) -> None:
    """One run_fn in this process (the repeat's child)."""
    import importlib

    from tfx.components.trainer.fn_args_utils import FnArgs

    from models.ranking import config as ranking
    from models.retrieval import config as retrieval

    examples = latest(root, "BehaviorSequenceGen/examples/*")
    configs = {  # the pipeline's defaults (PipelineConfig.retrieval / .ranking)
        "retrieval": {retrieval.CUSTOM_CONFIG_KEY: retrieval.RetrievalConfig().to_dict()},
        "ranking": {ranking.CUSTOM_CONFIG_KEY: ranking.RankingConfig().to_dict()},
    }
    args = FnArgs(
        train_files=[os.path.join(examples, "Split-train", "*")],
        eval_files=[os.path.join(examples, "Split-eval", "*")],
        transform_output=latest(root, "Transform/transform_graph/*"),
        serving_model_dir=os.path.join(out, "model", "Format-Serving"),
        model_run_dir=os.path.join(out, "model_run"),
        base_model=None,
        custom_config=configs[trainer],
    )
    importlib.import_module(TRAINERS[trainer]).run_fn(args)


def timed_child(code: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """Runs `python -c code` in the repo: (the finished process, wall s, its CPU s)."""
    start, before = time.time(), os.times()
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    wall, after = time.time() - start, os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return proc, wall, cpu


def run_once(root: str, trainer: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        code = f"from bench.trainer_run import _child; _child({root!r}, {trainer!r}, {out!r})"
        proc, wall, cpu = timed_child(code)
    if proc.returncode:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{trainer} run_fn failed (exit {proc.returncode})")
    lines = proc.stdout.splitlines()
    epochs = [line for line in lines if "epoch" in line and ("examples/s" in line)]
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "epochs": epochs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", help="a finished run's pipeline_root")
    p.add_argument("--trainer", choices=sorted(TRAINERS), default="retrieval")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    runs = []
    for i in range(args.repeats):
        runs.append(run_once(os.path.abspath(args.root), args.trainer))
        print(f"run {i + 1}/{args.repeats}: {runs[-1]['wall_s']} s wall", file=sys.stderr)
        for line in runs[-1]["epochs"]:
            print(f"    {line}", file=sys.stderr)
    walls = [r["wall_s"] for r in runs]
    result = {
        "trainer": args.trainer,
        "median_wall_s": statistics.median(walls),
        "wall_s_runs": walls,
        "cpu_s_runs": [r["cpu_s"] for r in runs],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
