"""Runs a compiled KFP v2 / Vertex AI PipelineJob JSON on this machine: a test harness.

It proves that the JSON we hand to Kubeflow Pipelines or Vertex AI really runs. It is
not a second orchestrator: one task at a time in DAG order, no caching, no retries,
no containers, no parallelism. For each task of `pipelineSpec.root.dag`:

- a container task runs the IR's own `command` + `args` (TFX's KFP v2 entrypoint,
  `python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`) in a
  subprocess with this repository's environment (`python` -> this interpreter). Its
  ExecutorInput is built as KFP's launcher builds it: parameter values (constants, or
  the pipeline's runtime parameters), input artifacts from the producers' outputs, and
  output artifacts with URIs under the local pipeline root. `{{$}}` in the args is that
  ExecutorInput as JSON. A `lifecycle.preCacheCheck` (the ExampleGen driver, which
  resolves the span) runs first, writing the output file the executor then reads.
- a resolver task runs each of its `outputArtifactQueries` filters against a local
  MLMD SQLite store with ML Metadata's own filter-query support (`ListOptions
  .filter_query`, translated clause by clause by `mlmd_filter`) and takes the newest
  match; no match is an empty input (a first run), not an error.
- the outputs a task reports (its executor_output.json) are recorded in that store:
  artifact type = schema title, metadata -> custom properties, state LIVE, with an
  execution and its input/output events in a context per run.

`python -m pipeline.kfp_local JOB.json --root DIR --metadata FILE [--param k=v]`
(`make kfp-local` compiles and runs it on tiny synthetic data).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from pipeline import kfp_params as P
from pipeline.kfp_local_store import Store, dag_order

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_JSON = "{{$}}"
RUN_FILE = "run.json"


def pipeline_parameters(job: dict, overrides: dict | None = None) -> dict:
    """The run's parameter values: defaults, the job's runtimeConfig, then `overrides`."""
    spec = job["pipelineSpec"]["root"].get("inputDefinitions", {}).get("parameters", {})
    values = {k: v["defaultValue"] for k, v in spec.items() if "defaultValue" in v}
    values.update(job.get("runtimeConfig", {}).get("parameterValues", {}))
    values.update(overrides or {})
    missing = sorted(set(spec) - set(values))
    if missing:
        raise ValueError(f"pipeline parameters without a value: {missing}")
    return values


def _parameter_values(task: dict, params: dict) -> dict:
    result = {}
    for name, source in task.get("inputs", {}).get("parameters", {}).items():
        if "componentInputParameter" in source:
            result[name] = params[source["componentInputParameter"]]
        else:
            result[name] = source["runtimeValue"]["constant"]
    return result


def _input_artifacts(task: dict, produced: dict) -> dict:
    """{key: [artifact dict]} from the producers' recorded outputs ([] where none)."""
    result = {}
    for key, source in task.get("inputs", {}).get("artifacts", {}).items():
        out = source["taskOutputArtifact"]
        result[key] = produced[out["producerTask"]].get(out["outputArtifactKey"], [])
    return result


def executor_input(task_dir: str, run_id: str, task: str, component: dict, inputs, values):
    """The ExecutorInput dict KFP's launcher would give this task (outputs under task_dir)."""
    outputs = {
        key: [
            {
                "name": f"{run_id}/{task}/{key}",
                "type": spec["artifactType"],
                "uri": os.path.join(task_dir, key),
                "metadata": {},
            }
        ]
        for key, spec in component.get("outputDefinitions", {}).get("artifacts", {}).items()
    }
    for artifacts in outputs.values():  # as KFP's launcher prepares each output's directory
        os.makedirs(artifacts[0]["uri"], exist_ok=True)
    strip = lambda a: {k: v for k, v in a.items() if k != "id"}  # noqa: E731
    return {
        "inputs": {
            "parameterValues": values,
            "artifacts": {k: {"artifacts": [strip(a) for a in v]} for k, v in inputs.items() if v},
        },
        "outputs": {
            "artifacts": {k: {"artifacts": v} for k, v in outputs.items()},
            "outputFile": os.path.join(task_dir, "executor_output.json"),
        },
    }, outputs


def _subprocess(command: list, args: list, payload: dict, log_path: str, task: str) -> None:
    """Runs command + args with `{{$}}` replaced; raises RuntimeError naming the task."""
    text = json.dumps(payload)
    argv = [sys.executable if c == "python" else c for c in command]
    argv += [text if a == ENTRY_JSON else a for a in args]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_USE_LEGACY_KERAS="1")
    with open(log_path, "ab") as log:
        done = subprocess.run(argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=log, check=False)
    if done.returncode:
        with open(log_path, errors="replace") as f:
            tail = "".join(f.readlines()[-15:])
        raise RuntimeError(f"task {task} failed (exit {done.returncode}); log {log_path}:\n{tail}")


def _reported(payload: dict) -> dict:
    """{output key: [runtime artifact dict]} from the task's executor_output.json."""
    with open(payload["outputs"]["outputFile"]) as f:
        reported = json.load(f).get("artifacts", {})
    return {k: v.get("artifacts", []) for k, v in reported.items()}


def _run_container(executor: dict, payload: dict, outputs: dict, log_path: str, task: str):
    """Runs the task's container command; its reported URIs and metadata go into `outputs`.

    A preCacheCheck (the ExampleGen driver) runs first: its output file carries the
    resolved span into the executor, and its artifact metadata (span, version) is kept
    under what the executor reports.
    """
    container = executor["container"]
    check = container.get("lifecycle", {}).get("preCacheCheck")
    driver = {}
    if check:
        _subprocess(check["command"], check.get("args", []), payload, log_path, task)
        driver = _reported(payload)
    _subprocess(container["command"], container.get("args", []), payload, log_path, task)
    reported = _reported(payload)
    for key, artifacts in outputs.items():
        for i, artifact in enumerate(artifacts):
            got = (reported.get(key) or [{}] * (i + 1))[i]
            before = (driver.get(key) or [{}] * (i + 1))[i].get("metadata", {})
            artifact["uri"] = got.get("uri") or artifact["uri"]
            artifact["metadata"] = {**before, **got.get("metadata", {})}


def run_task(store, context, run_dir, name, task, spec, params, produced) -> dict:
    """Runs one task; returns {output key: [artifact dict]} (recorded in the store)."""
    component = spec["components"][task["componentRef"]["name"]]
    executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
    inputs = _input_artifacts(task, produced)
    if "resolver" in executor:
        queries = executor["resolver"]["outputArtifactQueries"]
        return {key: store.newest(q["filter"], inputs) for key, q in queries.items()}
    task_dir = os.path.join(run_dir, name)
    os.makedirs(task_dir, exist_ok=True)
    values = _parameter_values(task, params)
    payload, outputs = executor_input(task_dir, context.name, name, component, inputs, values)
    _run_container(executor, payload, outputs, os.path.join(task_dir, "log.txt"), name)
    store.record(context, name, inputs, outputs)
    return outputs


def run(job_path: str, root: str, metadata: str, overrides: dict | None = None, log=print):
    """Runs every task of the compiled job once, in DAG order.

    Args:
        job_path: the compiled PipelineJob JSON.
        root: the local pipeline root (each run writes under <root>/<run id>/).
        metadata: the MLMD SQLite file (created when absent; kept across runs).
        overrides: runtime parameter values, e.g. {"update_mode": "incremental"}.
        log: progress lines.

    Returns:
        {"run_id", "tasks": {task: {"seconds", "inputs": {key: [uri]}, "outputs":
        {key: [{"uri", "metadata"}]}}}}, also written to <root>/<run id>/run.json.
    """
    with open(job_path) as f:
        job = json.load(f)
    spec = job["pipelineSpec"]
    params = pipeline_parameters(job, overrides)
    tasks = spec["root"]["dag"]["tasks"]
    store = Store(metadata)
    run_id = f"run-{len(store.mlmd.get_contexts()) + 1}-{time.strftime('%Y%m%d-%H%M%S')}"
    context, run_dir = store.run_context(run_id), os.path.join(os.path.abspath(root), run_id)
    produced, report, started = {}, {"run_id": run_id, "tasks": {}}, time.perf_counter()
    order = dag_order(tasks)
    for i, name in enumerate(order, 1):
        t0 = time.perf_counter()
        inputs = _input_artifacts(tasks[name], produced)
        produced[name] = run_task(
            store, context, run_dir, name, tasks[name], spec, params, produced
        )
        seconds = time.perf_counter() - t0
        report["tasks"][name] = {
            "seconds": round(seconds, 1),
            "inputs": {k: [a["uri"] for a in v] for k, v in inputs.items()},
            "outputs": {
                k: [{"uri": a["uri"], "metadata": a.get("metadata", {})} for a in v]
                for k, v in produced[name].items()
            },
        }
        log(f"[{i}/{len(order)}] {name}: {seconds:.1f} s")
    report["seconds"] = round(time.perf_counter() - started, 1)
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, RUN_FILE), "w") as f:
        json.dump(report, f, indent=1)
    log(f"{run_id}: {len(order)} tasks in {report['seconds']:.0f} s; {run_dir}/{RUN_FILE}")
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.kfp_local JOB.json --root DIR --metadata FILE [--param k=v]`."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("job", help="the compiled PipelineJob JSON (make kfp-compile)")
    p.add_argument("--root", required=True, help="the local pipeline root")
    p.add_argument("--metadata", required=True, help="the MLMD SQLite file (kept across runs)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    args = p.parse_args(argv)
    with open(args.job) as f:
        types = P.input_types(json.load(f))
    run(args.job, args.root, args.metadata, P.parse_params(args.param, types))
    return 0


if __name__ == "__main__":
    sys.exit(main())
