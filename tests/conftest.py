"""Test set-up shared by every test: Keras 2 for TFRS, the repo on sys.path, and
one session-wide run of the data stages on tiny synthetic data for model tests."""

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


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Runs ExampleGens -> BehaviorSequenceGen -> validation -> Transform once per session."""
    from pipeline import cli

    work = os.environ.get("RECSYS_TEST_WORK") or str(tmp_path_factory.mktemp("tiny"))
    # Materialized too: tests/models/common/test_data.py compares the trainers' default
    # input (raw examples transformed as they are read) with Transform's own output.
    argv = ["run", "--data", "synthetic:tiny", "--work-dir", work, "--until", "Transform"]
    argv += ["--materialize-transform"]
    assert cli.main(argv) == 0
    return TinyData(cli.build_config(cli._parser().parse_args(argv)))


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
