"""A local DAG runner that runs independent components at the same time.

TFX's LocalDagRunner launches the nodes one after another (its source carries the
TODO b/171319478 "use multi-threaded execution so that independent components can
be run in parallel"), so on ML-100K the retrieval branch waits for the DIN
trainer while one of the two cores idles. `ParallelDagRunner` keeps everything
else of LocalDagRunner: the same compiled IR, the same `Launcher` (drivers,
caching, MLMD publishing), the same failure semantics (the first failed node
stops the run and its exception is raised). It differs in one thing: every node
whose upstream nodes have finished is launched at once, up to `workers` at a time.

Each node runs in a process of its own, forked from a fork server that imported
TensorFlow and TFX once (`pipeline/forking.py`), as each task of a Kubeflow run gets
a container of its own. Processes, not threads: TensorFlow's global state (the global
random seed, Keras' session, the eager context) is per process, and two trainers
sharing one would change each other's results. A fresh process per node, not a
long-lived worker: a worker kept what its nodes had allocated (at 1M events, one
held 3.4 GiB idle after the two-tower trainer, the retrieval evaluator and ScaNN
while the other ran the ranking Evaluator: B6), and a node's result could depend
on what its worker had run before. A node process dies with the runner.

MLMD is a SQLite file here. Its writes (a node's driver and its publish) are
serialised across the workers by an exclusive `flock` on `<metadata>.lock`; the
executors themselves run unlocked.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from concurrent import futures

import psutil
from tfx.dsl.compiler import constants
from tfx.orchestration import metadata
from tfx.orchestration.local import runner_utils
from tfx.orchestration.portable import (
    launcher,
    partial_run_utils,
    runtime_parameter_utils,
    tfx_runner,
)
from tfx.proto.orchestration import pipeline_pb2

from pipeline import forking
from pipeline.config import LOCAL_WORKERS


@contextlib.contextmanager
def _exclusive(lock_path: str):
    """An exclusive advisory lock on `lock_path`, across processes."""
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class _MlmdLockedLauncher(launcher.Launcher):
    """TFX's Launcher whose MLMD phases hold the run's MLMD lock."""

    def __init__(self, lock_path: str, **kwargs):
        super().__init__(**kwargs)
        self._lock_path = lock_path

    def launch(self):
        if self._system_node_handler:  # resolvers, importers: MLMD work only
            with _exclusive(self._lock_path):
                return super().launch()
        return super().launch()

    def _prepare_execution(self):
        with _exclusive(self._lock_path):
            return super()._prepare_execution()

    def _publish_successful_execution(self, *args, **kwargs):
        with _exclusive(self._lock_path):
            return super()._publish_successful_execution(*args, **kwargs)

    def _publish_failed_execution(self, *args, **kwargs):
        with _exclusive(self._lock_path):
            return super()._publish_failed_execution(*args, **kwargs)


def _connection_config(pipeline: pipeline_pb2.Pipeline):
    deployment = runner_utils.extract_local_deployment_config(pipeline)
    config = deployment.metadata_connection_config
    which = config.WhichOneof("connection_config")
    return deployment, getattr(config, which) if which else None


def lock_path_for(connection_config) -> str:
    """The lock file beside a SQLite MLMD file."""
    uri = ""
    if connection_config is not None and connection_config.WhichOneof("config") == "sqlite":
        uri = connection_config.sqlite.filename_uri
    if not uri:
        raise ValueError("ParallelDagRunner needs a SQLite MLMD file (metadata_connection_config)")
    return uri + ".lock"


def _launch_node(pipeline_bytes: bytes, node_id: str, runner_pid: int) -> None:
    """Runs one node in this (fresh) process, as LocalDagRunner runs it in its own."""
    die_with(runner_pid)
    pipeline = pipeline_pb2.Pipeline.FromString(pipeline_bytes)
    deployment, connection_config = _connection_config(pipeline)
    node = next(n.pipeline_node for n in pipeline.nodes if n.pipeline_node.node_info.id == node_id)
    _MlmdLockedLauncher(
        lock_path_for(connection_config),
        pipeline_node=node,
        mlmd_connection=metadata.Metadata(connection_config),
        pipeline_info=pipeline.pipeline_info,
        pipeline_runtime_spec=pipeline.runtime_spec,
        executor_spec=runner_utils.extract_executor_spec(deployment, node_id),
        custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment, node_id),
    ).launch()


def die_with(runner_pid: int) -> None:
    """Ends this process (SIGTERM to itself) when the runner process ends, so that killing
    the runner (a scheduler's SIGTERM, `kill`) leaves no node running and writing to MLMD.
    Not PR_SET_PDEATHSIG: a node's parent is the fork server, which outlives the runner
    while any node it forked runs. Watches a pidfd (Linux >= 5.3), else polls each second."""
    try:
        fd = os.pidfd_open(runner_pid)
    except ProcessLookupError:
        os._exit(1)  # the runner has already ended
    except (AttributeError, OSError):
        fd = None

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])  # readable once the runner has ended
        else:
            while psutil.pid_exists(runner_pid):
                time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="die-with-runner", daemon=True).start()


def in_fresh_process(fn: Callable, *args):
    """fn(*args) in a new process forked from the fork server; its result, or its
    exception raised here."""
    with futures.ProcessPoolExecutor(1, mp_context=forking.CONTEXT) as child:
        return child.submit(fn, *args).result()


def _noop() -> None:
    pass


def chain_lengths(upstream: dict[str, set[str]]) -> dict[str, int]:
    """Per node, the number of nodes on its longest path to a sink, itself included."""
    downstream: dict[str, set[str]] = {n: set() for n in upstream}
    for node, ups in upstream.items():
        for up in ups:
            downstream[up].add(node)
    lengths: dict[str, int] = {}

    def length(node: str) -> int:
        if node not in lengths:
            lengths[node] = 1 + max((length(d) for d in downstream[node]), default=0)
        return lengths[node]

    for node in upstream:
        length(node)
    return lengths


def schedule(
    upstream: dict[str, set[str]], done: set[str], started: set[str], lengths: dict[str, int]
) -> list[str]:
    """The nodes not started whose upstream nodes are all done, longest chain first
    (the critical-path heuristic; `lengths` = chain_lengths(upstream)), then in
    `upstream`'s order."""
    ready = [n for n, ups in upstream.items() if n not in started and ups <= done]
    return sorted(ready, key=lambda n: -lengths[n])  # stable: ties keep their order


class ParallelDagRunner(tfx_runner.IrBasedRunner):
    """LocalDagRunner's semantics, with ready nodes launched in `workers` processes."""

    def __init__(self, workers: int = LOCAL_WORKERS, log: Callable[[str], None] | None = None):
        if workers < 1:
            raise ValueError(f"workers={workers}: need at least 1")
        self._workers = workers
        self._log = log or (lambda line: print(line, flush=True))

    def run_with_ir(self, pipeline: pipeline_pb2.Pipeline, run_options=None) -> None:
        """Runs the compiled pipeline; raises the first failed node's exception."""
        runtime_parameter_utils.substitute_runtime_parameter(
            pipeline,
            {constants.PIPELINE_RUN_ID_PARAMETER_NAME: datetime.datetime.now().isoformat()},
        )
        _, connection_config = _connection_config(pipeline)
        lock_path_for(connection_config)  # fail early without a SQLite MLMD
        if run_options:
            opts = run_options.partial_run
            partial_run_utils.mark_pipeline(
                pipeline,
                from_nodes=opts.from_nodes or None,
                to_nodes=opts.to_nodes or None,
                snapshot_settings=opts.snapshot_settings,
            )
        nodes = [n.pipeline_node for n in pipeline.nodes]
        skipped = {n.node_info.id for n in nodes if n.execution_options.HasField("skip")}
        upstream = {
            n.node_info.id: set(n.upstream_nodes) - skipped
            for n in nodes
            if n.node_info.id not in skipped
        }
        snapshot = {n.node_info.id for n in nodes if n.execution_options.run.perform_snapshot}
        self._run(pipeline, upstream, snapshot, connection_config)

    def _run(self, pipeline, upstream, snapshot, connection_config) -> None:
        blob = pipeline.SerializeToString()
        start = time.time()
        done: set[str] = set()
        started: set[str] = set()
        running: dict[futures.Future, tuple[str, float]] = {}
        failure: tuple[str, BaseException] | None = None
        lengths = chain_lengths(upstream)
        stamp = lambda: f"[{time.time() - start:6.1f} s]"  # noqa: E731
        # A thread per running node, each waiting for its node's process.
        with futures.ThreadPoolExecutor(self._workers) as pool:
            in_fresh_process(_noop)  # the fork server is up and has imported TF and TFX
            self._log(f"  {stamp()} fork server ready")
            pid = os.getpid()  # the nodes end when this process does
            while True:
                ready = [] if failure else schedule(upstream, done, started, lengths)
                for node_id in ready[: self._workers - len(running)]:  # no queue in the pool
                    if node_id in snapshot:
                        with metadata.Metadata(connection_config) as handle:
                            partial_run_utils.snapshot(handle, pipeline)
                    started.add(node_id)
                    future = pool.submit(in_fresh_process, _launch_node, blob, node_id, pid)
                    running[future] = (node_id, time.time())
                    self._log(f"  {stamp()} started  {node_id}")
                if not running:
                    break
                finished, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for future in finished:
                    node_id, began = running.pop(future)
                    took = f"({time.time() - began:.1f} s)"
                    try:
                        future.result()
                    except BaseException as e:  # noqa: BLE001 -- reported and re-raised below
                        failure = failure or (node_id, e)
                        last = (str(e).strip().splitlines() or [""])[-1][:300]  # no traceback
                        why = f"{type(e).__name__}: {last}"
                        self._log(f"  {stamp()} FAILED   {node_id} {took}: {why}")
                        continue
                    done.add(node_id)
                    self._log(f"  {stamp()} finished {node_id} {took}")
        if failure:
            node_id, error = failure
            not_run = sorted(set(upstream) - started)
            self._log(f"  {node_id} failed; not run: {', '.join(not_run) or 'nothing'}")
            raise error
        if set(upstream) - done:  # a cycle; TFX's compiler refuses those first
            raise RuntimeError(f"these nodes never became ready: {sorted(set(upstream) - done)}")
