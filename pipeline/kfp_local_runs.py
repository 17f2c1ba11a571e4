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
import os
import shutil
import time

from pipeline import config as C
from pipeline import kfp_local

WITHHELD = "withheld"
REPORTS = {  # task -> output key whose metadata says what it did
    "BaselineLoader": ("retrieval_model", "ranking_model"),
    "retrieval_trainer": ("model",),
    "ranking_trainer": ("model",),
    "HardNegativeMiner": ("hard_negatives",),
    "retrieval_evaluator": ("blessing",),
    "ranking_evaluator": ("blessing",),
    "ScannIndexBuilder": ("blessing",),
    "Pusher": ("pushed_model",),
}
KEYS = ("baseline", "blessed", "status", "negatives", "pushed", "pushed_version", "span")


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


def describe(report: dict) -> list[str]:
    """One line per reporting task: the metadata keys in KEYS of its outputs."""
    lines = [f"{report['run_id']} ({report['seconds']:.0f} s)"]
    for task, keys in REPORTS.items():
        outputs = report["tasks"].get(task, {}).get("outputs", {})
        for key in keys:
            for artifact in outputs.get(key, []):
                meta = {k: v for k, v in artifact["metadata"].items() if k in KEYS}
                lines.append(f"  {task}.{key}: {meta}")
    record = report["tasks"].get("latest_baseline_record", {}).get("outputs", {}).get("record")
    lines.insert(1, f"  resolved baseline record: {record[0]['uri'] if record else 'none'}")
    return lines


def three_runs(work: str, train_steps: int = 20, log=print) -> list[dict]:
    """Runs the compiled IR three times (full, full, incremental on a new span)."""
    data = prepare_data(work)
    job = compile_local(work, data, train_steps)
    root, store = os.path.join(work, "root"), os.path.join(work, "metadata.sqlite")
    reports = []
    for i, params in enumerate([{}, {}, {"update_mode": "incremental"}], 1):
        if i == 3:
            release_span(work, data)
        log(f"--- run {i}: {params or 'defaults'}")
        reports.append(kfp_local.run(job, root, store, params, log=log))
        for line in describe(reports[-1]):
            log(line)
    return reports


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default=".work/kfp-local", help="emptied first")
    p.add_argument("--train-steps", type=int, default=20)
    args = p.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    started = time.perf_counter()
    three_runs(args.work, args.train_steps)
    print(f"make kfp-local: 3 runs in {time.perf_counter() - started:.0f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
