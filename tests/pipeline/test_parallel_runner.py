"""ParallelDagRunner: ready nodes run at once in worker processes; order, caching and
failure behave as in TFX's LocalDagRunner. Every run here goes through real TFX
(compiler, Launcher, SQLite MLMD)."""

import json
import os

import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.orchestration import metadata

from pipeline.parallel_runner import ParallelDagRunner, chain_lengths, schedule
from tests.pipeline.runner_components import Step


def test_chain_lengths_count_the_longest_path_to_a_sink():
    #   a -> b -> d ;  a -> c ;  e alone
    upstream = {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b"}, "e": set()}
    assert chain_lengths(upstream) == {"a": 3, "b": 2, "c": 1, "d": 1, "e": 1}


def test_schedule_starts_the_longest_chain_first():
    upstream = {"short": set(), "long": set(), "x": {"long"}, "y": {"x"}, "z": {"short", "y"}}
    lengths = chain_lengths(upstream)
    assert schedule(upstream, done=set(), started=set(), lengths=lengths) == ["long", "short"]
    assert schedule(upstream, {"long"}, {"long"}, lengths) == ["x", "short"]


def test_schedule_picks_the_not_started_nodes_whose_upstream_is_done():
    upstream = {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
    lengths = chain_lengths(upstream)
    assert schedule(upstream, set(), set(), lengths) == ["a"]
    assert schedule(upstream, set(), {"a"}, lengths) == []
    assert schedule(upstream, {"a"}, {"a"}, lengths) == ["b", "c"]
    assert schedule(upstream, {"a", "b"}, {"a", "b", "c"}, lengths) == []
    assert schedule(upstream, {"a", "b", "c"}, {"a", "b", "c"}, lengths) == ["d"]


def diamond(root, log_dir, fail="", cache=False, seconds=2.0):
    """a -> (b, c) -> d; b and c are independent."""
    steps = {
        n: Step(
            name=n, seconds=seconds if n in "bc" else 0.0, log_dir=log_dir, fail=int(n == fail)
        ).with_id(n)
        for n in "abcd"
    }
    for down, ups in {"b": "a", "c": "a", "d": "bc"}.items():
        for up in ups:
            steps[down].add_upstream_node(steps[up])
    return tfx.dsl.Pipeline(
        pipeline_name="diamond",
        pipeline_root=os.path.join(root, "root"),
        components=list(steps.values()),
        enable_cache=cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.sqlite")
        ),
    )


def read_log(log_dir):
    return {
        name[: -len(".json")]: json.load(open(os.path.join(log_dir, name)))
        for name in os.listdir(log_dir)
    }


def states(root):
    config = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        os.path.join(root, "metadata.sqlite")
    )
    with metadata.Metadata(config) as m:
        return {
            node.name.rsplit(".", 1)[-1]: [
                metadata_store_pb2.Execution.State.Name(e.last_known_state)
                for e in sorted(m.store.get_executions_by_context(node.id), key=lambda e: e.id)
            ]
            for node in m.store.get_contexts_by_type("node")
        }


def test_independent_nodes_overlap_in_two_processes_and_a_cached_rerun_runs_nothing(tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    lines = []
    ParallelDagRunner(workers=2, log=lines.append).run(
        diamond(str(tmp_path), str(log_dir), cache=True)
    )
    ran = read_log(log_dir)
    a, b, c, d = (ran[n] for n in "abcd")
    assert b["pid"] != c["pid"]  # two workers
    assert max(b["start"], c["start"]) < min(b["end"], c["end"])  # b and c overlapped
    assert a["end"] <= min(b["start"], c["start"])
    assert max(b["end"], c["end"]) <= d["start"]
    assert sum("finished" in line for line in lines) == 4
    assert all(s == ["COMPLETE"] for s in states(str(tmp_path)).values())

    for name in os.listdir(log_dir):
        os.remove(log_dir / name)
    ParallelDagRunner(workers=2, log=lambda _: None).run(
        diamond(str(tmp_path), str(log_dir), cache=True)
    )
    assert read_log(log_dir) == {}  # no executor ran again: the Launcher's cache held
    assert all(s == ["COMPLETE", "CACHED"] for s in states(str(tmp_path)).values())


def test_a_failed_node_raises_and_its_downstream_never_runs(tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    lines = []
    with pytest.raises(RuntimeError, match="step c failed on purpose"):
        ParallelDagRunner(workers=2, log=lines.append).run(
            diamond(str(tmp_path), str(log_dir), fail="c")
        )
    assert set(read_log(log_dir)) == {"a", "b"}  # b, running beside c, still finished
    recorded = states(str(tmp_path))
    assert recorded["c"] == ["FAILED"] and "d" not in recorded
    assert any("FAILED   c" in line for line in lines)
    assert "not run: d" in lines[-1]


def test_needs_a_sqlite_metadata_store(tmp_path):
    bare = diamond(str(tmp_path), str(tmp_path))
    bare.metadata_connection_config = None
    with pytest.raises(ValueError, match="SQLite MLMD"):
        ParallelDagRunner(workers=2).run(bare)
    with pytest.raises(ValueError, match="workers=0"):
        ParallelDagRunner(workers=0)


_RUN_DIAMOND = """
import sys
from pipeline.parallel_runner import ParallelDagRunner
from tests.pipeline.test_parallel_runner import diamond
ParallelDagRunner(workers=2).run(diamond(sys.argv[1], sys.argv[1], seconds=120.0))
"""


def test_killing_the_runner_ends_its_workers(tmp_path):
    """A scheduler's SIGTERM to the runner must not leave its nodes' processes (forked
    from the fork server) or the server running."""
    import contextlib
    import signal
    import subprocess
    import sys
    import time

    import psutil

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    runner = subprocess.Popen(
        [sys.executable, "-c", _RUN_DIAMOND, str(tmp_path)],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    workers = []
    try:
        for line in runner.stdout:  # wait until b and c (120 s each) are running
            if "started  c" in line or "started  b" in line:
                break
        time.sleep(1)  # the second node's process
        workers = psutil.Process(runner.pid).children(recursive=True)
        server = [  # forked nodes share its command line; it alone is the runner's child
            p for p in workers if "forkserver" in " ".join(p.cmdline()) and p.ppid() == runner.pid
        ]
        assert len(server) == 1, [p.cmdline() for p in workers]
        nodes = [p for p in workers if p.ppid() == server[0].pid]
        assert len(nodes) >= 2, [p.cmdline() for p in workers]  # b and c (and a tracker)
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, f"workers still running after the runner ended: {alive}"
    finally:
        if runner.poll() is None:
            runner.kill()
        for p in workers:  # orphans, should the test fail
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
