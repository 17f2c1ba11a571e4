"""`make kfp-local`: the compiled IR run three times by pipeline/kfp_local on tiny data.

Tiny synthetic data in two spans; span 1 is held back. Run 1 and run 2 read span 0
(`update_mode=full`); span 1 is then added and run 3 reads it with
`update_mode=incremental`. Each run prints what it resolved (the baseline record and
each family's baseline), trained (warm start, mode), blessed and pushed.
tests/e2e/test_kfp_local_e2e.py asserts the same on the reports `three_runs` returns.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time

from pipeline import config as C
from pipeline import kfp_local

WITHHELD = "withheld"
FAMILIES = ("retrieval", "ranking")
SUMMARY_FILE = "training_summary.json"  # in each trainer's model_run


def prepare_data(work: str) -> str:
    """Tiny synthetic tables in two spans under work/data; span 1 moved to work/withheld."""
    from pipeline.sources import synthetic

    data = os.path.join(work, "data")
    if not os.path.isdir(data):
        synthetic.ensure_synthetic(data, dataclasses.replace(synthetic.SIZES["tiny"], n_spans=2))
    span1 = os.path.join(data, "interactions", "span-1")
    if os.path.isdir(span1):
        os.makedirs(os.path.join(work, WITHHELD), exist_ok=True)
        shutil.move(span1, os.path.join(work, WITHHELD, "span-1"))
    return data


def release_span(work: str, data: str) -> None:
    """Adds the held-back span 1 (a new day of interactions)."""
    shutil.move(os.path.join(work, WITHHELD, "span-1"), os.path.join(data, "interactions"))


def compile_local(work: str, data: str, train_steps: int) -> str:
    """Compiles the pipeline for this checkout (code root = the repository)."""
    from components.retrieval_evaluator.metrics import BlessingConfig
    from pipeline import kubeflow_v2_runner

    config = C.PipelineConfig(
        data=C.DataConfig(source=C.SYNTHETIC, path=os.path.abspath(data)),
        pipeline_root=os.path.abspath(os.path.join(work, "root")),
        train_steps=train_steps,
        ranking_min_auc=0.0,  # tiny data, few steps: bless on the regression gates only
        ranking_auc_tolerance=1.0,
        retrieval_blessing=BlessingConfig(max_regression=1.0),
    )
    out = os.path.join(work, "pipeline.json")
    kubeflow = C.KubeflowConfig(image="local", code_root=kfp_local.REPO_ROOT, output=out)
    kubeflow_v2_runner.compile_pipeline(config, kubeflow)
    return out


def _artifact(report: dict, task: str, key: str) -> dict:
    found = report["tasks"].get(task, {}).get("outputs", {}).get(key) or [{}]
    return found[0]


def _trained(report: dict, family: str) -> str:
    """Mode, warm start and trainable variables from the trainer's training_summary.json."""
    path = os.path.join(
        _artifact(report, f"{family}_trainer", "model_run").get("uri", ""), SUMMARY_FILE
    )
    if not os.path.exists(path):
        return "no summary"
    with open(path) as f:
        summary = json.load(f)
    warm = summary.get("warm_start") or {}
    counts = {
        k: v if isinstance(v, int) else len(v)
        for k, v in warm.items()
        if k not in ("base_model", "trainable_variables")
    }
    trainable = summary.get("trainable_variables") or warm.get("trainable_variables")
    mode = summary.get("mode", "full")
    text = f"mode {mode}, " + (f"warm start {counts}" if warm else "from scratch")
    return text + (f", trained only {trainable}" if trainable else "")


def describe(report: dict) -> list[str]:
    """What a run resolved, trained, blessed and pushed."""
    meta = lambda task, key: _artifact(report, task, key).get("metadata", {})  # noqa: E731
    gen = meta("interactions_example_gen", "examples")
    span = gen.get("span", gen.get("custom:span"))
    span = int(span) if isinstance(span, float) else span  # KFP metadata numbers are doubles
    record = _artifact(report, "latest_baseline_record", "record").get("uri", "none (first run)")
    lines = [
        f"{report['run_id']} ({report['seconds']:.0f} s), span {span}",
        f"  resolved: baseline record {record}",
    ]
    for family in FAMILIES:
        blessing = meta(f"{family}_evaluator", "blessing")
        lines += [
            f"  {family}: loaded {meta('BaselineLoader', f'{family}_model').get('baseline')}",
            f"    trained: {_trained(report, family)}",
            f"    evaluated: blessed={int(blessing.get('blessed', 0))}; {blessing.get('baseline')}",
        ]
    miner, pushed = meta("HardNegativeMiner", "hard_negatives"), meta("Pusher", "pushed_model")
    index = int(meta("ScannIndexBuilder", "blessing").get("blessed", 0))
    version = int(pushed.get("pushed_version", 0))
    lines += [
        f"  HardNegativeMiner: {miner.get('status')}, {int(miner.get('negatives', 0))} negatives",
        f"  ScannIndexBuilder: blessed={index}",
        f"  Pusher: pushed={int(pushed.get('pushed', 0))} version {version}",
    ]
    return lines


def three_runs(work: str, train_steps: int = 20, log=print, workers: int = 2) -> list[dict]:
    """Runs the compiled IR three times (full, full, incremental on a new span), `workers`
    task subprocesses at once."""
    data = prepare_data(work)
    job = compile_local(work, data, train_steps)
    root, store = os.path.join(work, "root"), os.path.join(work, "metadata.sqlite")
    reports = []
    for i, params in enumerate([{}, {}, {"update_mode": "incremental"}], 1):
        if i == 3:
            release_span(work, data)
        log(f"--- run {i}: {params or 'defaults'}")
        reports.append(kfp_local.run(job, root, store, params, log=log, workers=workers))
        for line in describe(reports[-1]):
            log(line)
    return reports


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default=".work/kfp-local", help="emptied first")
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--workers", type=int, default=2, help="task subprocesses at once")
    args = p.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    started = time.perf_counter()
    three_runs(args.work, args.train_steps, workers=args.workers)
    print(f"make kfp-local: 3 runs in {time.perf_counter() - started:.0f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
