"""Runs a compiled KFP v2 / Vertex AI PipelineJob JSON on this machine: a test harness.

It proves that the JSON we hand to Kubeflow Pipelines or Vertex AI really runs. It is
not a second orchestrator: tasks in DAG order (at most `workers` subprocesses at once,
default 1), no caching, no retries, no containers. For each task of
`pipelineSpec.root.dag`:

- a container task runs the IR's own `command` + `args` (TFX's KFP v2 entrypoint,
  `python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`) in a
  subprocess with this repository's environment (`python` -> this interpreter; a
  `python -m` command runs in a child forked from a server that imported TensorFlow
  once, which saves ~5 s per task, any other command is executed as is). Its
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

Only the main thread touches the store; a worker thread just waits for its subprocess.
`python -m pipeline.kfp_local JOB.json --root DIR --metadata FILE [--param k=v]
[--workers N]` (`make kfp-local` compiles and runs it on tiny synthetic data).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import threading
import time
from concurrent import futures
from multiprocessing import connection

from pipeline import forking
from pipeline import kfp_params as P
from pipeline.kfp_local_store import Store, dag_order, dependencies

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_JSON = "{{$}}"
RUN_FILE = "run.json"
# Reading a child's exit code (Popen.poll, also run by every start()) is not thread-safe:
# two threads reading one child's status pipe leave the other with exit code 255.
_POLL_LOCK = threading.Lock()


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


def _forked_module(module: str, argv: list, env: dict, log_path: str) -> None:
    """In a child forked from a process that imported TensorFlow already: `python -m
    module argv...` with stdout and stderr to log_path."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(REPO_ROOT)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(log, 1), os.dup2(log, 2)
    sys.path.insert(0, REPO_ROOT)
    sys.argv = [module, *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        sys.stdout.flush(), sys.stderr.flush()


def _subprocess(command: list, args: list, payload: dict, log_path: str, task: str) -> None:
    """Runs command + args with `{{$}}` replaced; raises RuntimeError naming the task.

    `python -m MODULE` runs in a process forked from a server that imported TensorFlow
    once (each task would spend ~5 s importing it), any other command as is.
    """
    argv = [json.dumps(payload) if a == ENTRY_JSON else a for a in args]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_USE_LEGACY_KERAS="1")
    if command[:2] == ["python", "-m"] and len(command) == 3:
        child = forking.CONTEXT.Process(
            target=_forked_module, args=(command[2], argv, env, log_path)
        )
        with _POLL_LOCK:  # start() polls the other children too
            child.start()
        connection.wait([child.sentinel])
        with _POLL_LOCK:
            child.join()
            code = child.exitcode
    else:
        command = [sys.executable if c == "python" else c for c in command]
        with open(log_path, "ab") as log:
            code = subprocess.run(
                command + argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=log, check=False
            ).returncode
    if code:
        with open(log_path, errors="replace") as f:
            tail = "".join(f.readlines()[-15:])
        raise RuntimeError(f"task {task} failed (exit {code}); log {log_path}:\n{tail}")


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


class _Run:
    """One run of the job: its MLMD context, what each task produced, and the report.

    Only the main thread calls it; worker threads run `_run_container` only.
    """

    def __init__(self, spec: dict, params: dict, store: Store, root: str, log):
        self.spec, self.params, self.store, self.log = spec, params, store, log
        self.tasks = spec["root"]["dag"]["tasks"]
        run_id = f"run-{len(store.mlmd.get_contexts()) + 1}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.context, self.dir = (
            store.run_context(run_id),
            os.path.join(os.path.abspath(root), run_id),
        )
        self.produced, self.report, self.submitted = {}, {"run_id": run_id, "tasks": {}}, {}

    def start(self, name: str, pool):
        """Answers a resolver at once (returns None), or submits a container task."""
        task, t0 = self.tasks[name], time.perf_counter()
        component = self.spec["components"][task["componentRef"]["name"]]
        executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
        inputs = _input_artifacts(task, self.produced)
        if "resolver" in executor:
            queries = executor["resolver"]["outputArtifactQueries"]
            self.finish(
                name, t0, {k: self.store.newest(q["filter"], inputs) for k, q in queries.items()}
            )
            return None
        task_dir = os.path.join(self.dir, name)
        os.makedirs(task_dir, exist_ok=True)
        values = _parameter_values(task, self.params)
        payload, outputs = executor_input(
            task_dir, self.context.name, name, component, inputs, values
        )
        log_path = os.path.join(task_dir, "log.txt")
        future = pool.submit(_run_container, executor, payload, outputs, log_path, name)
        self.submitted[future] = (name, t0, inputs, outputs)
        return future

    def done(self, future) -> None:
        """Records a finished container task's outputs; raises its error."""
        name, t0, inputs, outputs = self.submitted.pop(future)
        future.result()
        self.store.record(self.context, name, inputs, outputs)
        self.finish(name, t0, outputs)

    def finish(self, name: str, t0: float, outputs: dict) -> None:
        self.produced[name] = outputs
        seconds = time.perf_counter() - t0
        self.report["tasks"][name] = {
            "seconds": round(seconds, 1),
            "inputs": {
                k: [a["uri"] for a in v]
                for k, v in _input_artifacts(self.tasks[name], self.produced).items()
            },
            "outputs": {
                k: [{"uri": a["uri"], "metadata": a.get("metadata", {})} for a in v]
                for k, v in outputs.items()
            },
        }
        self.log(f"[{len(self.report['tasks'])}/{len(self.tasks)}] {name}: {seconds:.1f} s")


def run(job_path: str, root: str, metadata: str, overrides=None, log=print, workers: int = 1):
    """Runs every task of the compiled job once, in DAG order.

    Args:
        job_path: the compiled PipelineJob JSON.
        root: the local pipeline root (each run writes under <root>/<run id>/).
        metadata: the MLMD SQLite file (created when absent; kept across runs).
        overrides: runtime parameter values, e.g. {"update_mode": "incremental"}.
        log: progress lines.
        workers: container tasks run at once (each its own subprocess).

    Returns:
        {"run_id", "seconds", "tasks": {task: {"seconds", "inputs": {key: [uri]},
        "outputs": {key: [{"uri", "metadata"}]}}}}, also written to <root>/<run id>/run.json.

    Raises:
        RuntimeError: the first task that failed (the running ones finish first).
    """
    with open(job_path) as f:
        job = json.load(f)
    started, workers = time.perf_counter(), max(1, workers)
    this = _Run(
        job["pipelineSpec"], pipeline_parameters(job, overrides), Store(metadata), root, log
    )
    pending, needs, running, error = dag_order(this.tasks), dependencies(this.tasks), set(), None
    with futures.ThreadPoolExecutor(workers) as pool:
        while True:
            ready = [n for n in pending if needs[n] <= set(this.produced)]
            while ready and error is None and len(running) < workers:
                pending.remove(ready[0])
                future = this.start(ready.pop(0), pool)
                if future is None:  # a resolver, answered: its consumers may be ready now
                    ready = [n for n in pending if needs[n] <= set(this.produced)]
                else:
                    running.add(future)
            if not running:
                break
            finished, running = futures.wait(running, return_when=futures.FIRST_COMPLETED)
            for future in finished:
                try:
                    this.done(future)
                except Exception as e:  # noqa: BLE001 -- raised once the running tasks end
                    error = error or e
    if error is not None:
        raise error
    report, path = this.report, os.path.join(this.dir, RUN_FILE)
    report["seconds"] = round(time.perf_counter() - started, 1)
    os.makedirs(this.dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    log(f"{report['run_id']}: {len(this.tasks)} tasks in {report['seconds']:.0f} s; {path}")
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.kfp_local JOB.json --root DIR --metadata FILE [--param k=v]`."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("job", help="the compiled PipelineJob JSON (make kfp-compile)")
    p.add_argument("--root", required=True, help="the local pipeline root")
    p.add_argument("--metadata", required=True, help="the MLMD SQLite file (kept across runs)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--workers", type=int, default=1, help="task subprocesses at once")
    args = p.parse_args(argv)
    with open(args.job) as f:
        types = P.input_types(json.load(f))
    params = P.parse_params(args.param, types)
    run(args.job, args.root, args.metadata, params, workers=args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
