"""Test set-up shared by every test: Keras 2 for TFRS, the repo on sys.path, and
one session-wide run of the data stages on tiny synthetic data for model tests.

`make test` runs the suite on TEST_WORKERS pytest-xdist processes (`--dist loadgroup`):
each test module is one unit of work, except that every test using the `run` fixture
(one whole pipeline run, which some of them re-run) is in one unit, and the units
that run whole pipelines are handed out first. Session fixtures that only read their
output (`tiny_data`, `ranker_run`) are built once per session, not once per worker.
"""

import contextlib
import fcntl
import glob
import os
import sys

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))


class TinyData:
    """Paths of the data stages' outputs for synthetic:tiny (see `tiny_data`)."""

    def __init__(self, config):
        root = config.pipeline_root
        self.config = config

        def latest(*parts):
            return sorted(glob.glob(os.path.join(root, *parts, "*")), key=os.path.getmtime)[-1]

        self.transform_graph = latest("Transform", "transform_graph")
        self.transformed_examples = latest("Transform", "transformed_examples")
        self.examples = latest("BehaviorSequenceGen", "examples")  # raw: Split-train, Split-eval
        self.catalog = latest("BehaviorSequenceGen", "catalog")  # raw: Split-catalog
        self.schema = latest("ImportSchemaGen", "schema")

    def transformed(self, split):
        """Glob of the transformed, gzipped examples of a split."""
        return os.path.join(self.transformed_examples, f"Split-{split}", "*")

    def raw(self, split):
        """Glob of the raw sequence examples of a split ('catalog' reads the catalog)."""
        base = self.catalog if split == "catalog" else self.examples
        return os.path.join(base, f"Split-{split}", "*")

    def trainer_args(self, root: str, custom_config: dict, **overrides):
        """TFX FnArgs for a trainer's run_fn on these data, its model under `root`."""
        from tfx.components.trainer.fn_args_utils import FnArgs

        return FnArgs(
            train_files=[self.raw("train")],
            eval_files=[self.raw("eval")],
            transform_output=self.transform_graph,
            serving_model_dir=os.path.join(root, "model", "Format-Serving"),
            model_run_dir=os.path.join(root, "model_run"),
            custom_config=custom_config,
            **overrides,
        )


WHOLE_PIPELINE = "whole-pipeline:"  # the xdist groups whose tests run whole pipelines


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """One xdist group per module; one for every user of `run`, whatever its module."""
    for item in items:
        if "run" in item.fixturenames:
            group = WHOLE_PIPELINE + "run"
        elif item.get_closest_marker("e2e"):
            group = WHOLE_PIPELINE + item.module.__name__
        else:
            group = item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_xdist_make_scheduler(config, log):
    """--dist loadgroup hands out the groups with the most tests first; this one hands out
    the whole-pipeline groups first (a few tests, but minutes each), so that no worker is
    left with one at the end while the other idles."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class WholePipelinesFirst(LoadGroupScheduling):
        def _assign_work_unit(self, node):
            first = [scope for scope in self.workqueue if scope.startswith(WHOLE_PIPELINE)]
            for scope in reversed(first):
                self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

    return WholePipelinesFirst(config, log)


def build_once(tmp_path_factory, name: str, build) -> str:
    """`build(dir)` once per test session, even across xdist workers; returns dir.

    The first worker to take the lock builds; the others wait for it and reuse what it
    wrote (a DONE file marks a complete build; a failed one is retried by the next).
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's directory, shared by its workers
    path = root / name
    with _exclusive(root / f"{name}.lock"):
        if not (path / "DONE").exists():
            path.mkdir(exist_ok=True)
            build(str(path))
            (path / "DONE").write_text("ok\n")
    return str(path)


@contextlib.contextmanager
def _exclusive(lock_path):
    """Holds an exclusive flock on lock_path: one xdist worker at a time."""
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _tiny_argv(work: str) -> list[str]:
    # Materialized too: tests/models/common/test_data.py compares the trainers' default
    # input (raw examples transformed as they are read) with Transform's own output.
    argv = ["run", "--data", "synthetic:tiny", "--work-dir", work, "--until", "Transform"]
    return argv + ["--materialize-transform"]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Runs ExampleGens -> BehaviorSequenceGen -> validation -> Transform once per session."""
    from pipeline import cli

    def build(work):
        assert cli.main(_tiny_argv(work)) == 0

    work = os.environ.get("RECSYS_TEST_WORK")  # a kept work dir: its cache makes reruns quick
    if work:
        os.makedirs(work, exist_ok=True)
        with _exclusive(os.path.join(work, ".tests.lock")):
            build(work)
    else:
        work = build_once(tmp_path_factory, "tiny", build)
    return TinyData(cli.build_config(cli._parser().parse_args(_tiny_argv(work))))


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """(config, summary) of one full LocalDagRunner run on tiny data, pushing to
    <work>/serving; shared by every whole-pipeline test (tests/e2e, the miner's)."""
    from pipeline import cli, summary

    work = str(tmp_path_factory.mktemp("work"))  # fresh: a repeat run would warm-start
    # Tiny data trains a weak ranker: no AUC floor, so that run 2 has a baseline to lose to.
    argv = ["run", "--data", "synthetic:tiny", "--work-dir", work]
    argv += ["--negative-ratio", "2", "--ranking-min-auc", "0"]
    assert cli.main(argv) == 0
    config = cli.build_config(cli._parser().parse_args(argv))
    return config, summary.collect(config)
