"""The ranking Evaluator (TFX's Evaluator executor, TFMA) alone, on a finished pipeline
run's artifacts: wall and CPU seconds per run and per eval example, median of repeats.

    python -m bench.ranking_eval PIPELINE_ROOT [--repeats 3] [--baseline]

PIPELINE_ROOT is a run's pipeline_root (`python -m pipeline run --work-dir W` keeps it under
W/runs/<data>/pipeline_root). The latest DIN model and BehaviorSequenceGen examples in it
are evaluated with the pipeline's EvalConfig (`models.ranking.evaluation`: every metric, the
overall slice and one per slice feature, GAUC). `--baseline` passes the same model as the
baseline too, as every run after the first does (TFMA then scores each example twice and
checks the change thresholds). Each repeat runs in a fresh process, as the local runner's
components do. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

from bench.trainer_run import latest, timed_child


def _child(examples_uri: str, model: str, out: str, baseline: bool) -> None:
    """One Evaluator Do in this process (the repeat's child); prints a RESULT line: the
    overall slice's example count, AUC and GAUC, and the number of slices."""
    from tfx.components.evaluator import executor
    from tfx.types import standard_artifacts
    from tfx.types import standard_component_specs as S
    from tfx.utils import json_utils, proto_utils

    from models.ranking import evaluation

    def artifact(cls, uri, artifact_id):
        a = cls()
        a.uri, a.id = uri, artifact_id
        return a

    examples = artifact(standard_artifacts.Examples, examples_uri, 1)
    examples.split_names = json_utils.dumps(["train", "eval"])
    inputs = {
        S.EXAMPLES_KEY: [examples],
        S.MODEL_KEY: [artifact(standard_artifacts.Model, model, 2)],
    }
    if baseline:
        inputs[S.BASELINE_MODEL_KEY] = [artifact(standard_artifacts.Model, model, 3)]
    outputs = {}
    for key, cls in (
        (S.EVALUATION_KEY, standard_artifacts.ModelEvaluation),
        (S.BLESSING_KEY, standard_artifacts.ModelBlessing),
    ):
        os.makedirs(os.path.join(out, key))
        outputs[key] = [artifact(cls, os.path.join(out, key), 4)]
    kwargs = evaluation.evaluator_kwargs(examples=None, model=None)
    properties = {
        S.EVAL_CONFIG_KEY: proto_utils.proto_to_json(kwargs["eval_config"]),
        S.EXAMPLE_SPLITS_KEY: json_utils.dumps(kwargs["example_splits"]),
    }
    executor.Executor().Do(inputs, outputs, properties)
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(
        os.path.join(out, S.EVALUATION_KEY), model_name="candidate" if baseline else None
    )
    overall = dict(result.slicing_metrics)[()][""][""]
    print(
        "RESULT "
        + json.dumps(
            {
                "examples": int(overall["example_count"]["doubleValue"]),
                "auc": overall["auc"]["doubleValue"],
                "gauc": overall["gauc"]["doubleValue"],
                "slices": len(result.slicing_metrics),
            }
        )
    )


def run_once(root: str, baseline: bool) -> dict:
    # Resolved here, so that a missing artifact is named before a child imports TF.
    examples = latest(root, "BehaviorSequenceGen/examples/*")
    model = latest(root, "ranking_trainer/model/*")
    with tempfile.TemporaryDirectory() as out:
        args = f"{examples!r}, {model!r}, {out!r}, {baseline!r}"
        code = f"from bench.ranking_eval import _child; _child({args})"
        proc, wall, cpu = timed_child(code)
    found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not found:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"the Evaluator failed (exit {proc.returncode})")
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), **json.loads(found[-1][7:])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", help="a finished run's pipeline_root")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--baseline", action="store_true", help="the model is its own baseline")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    runs = []
    for i in range(args.repeats):
        runs.append(run_once(os.path.abspath(args.root), args.baseline))
        print(f"run {i + 1}/{args.repeats}: {runs[-1]}", file=sys.stderr)
    walls = [r["wall_s"] for r in runs]
    median = statistics.median(walls)
    result = {
        "baseline": args.baseline,
        "examples": runs[0]["examples"],
        "slices": runs[0]["slices"],
        "auc": runs[0]["auc"],
        "gauc": runs[0]["gauc"],
        "median_wall_s": median,
        "ms_per_example": round(1000 * median / max(runs[0]["examples"], 1), 2),
        "wall_s_runs": walls,
        "cpu_s_runs": [r["cpu_s"] for r in runs],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
