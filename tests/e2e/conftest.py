"""One whole-pipeline run on tiny synthetic data, shared by the e2e modules."""

import pytest

from pipeline import cli, summary


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """(config, summary) of a full LocalDagRunner run, pushing to <work>/serving."""
    work = tmp_path_factory.mktemp("work")
    # Tiny data trains a weak ranker: no AUC floor, so that run 2 has a baseline to lose to.
    argv = ["run", "--data", "synthetic:tiny", "--work-dir", str(work)]
    argv += ["--negative-ratio", "2", "--ranking-min-auc", "0"]
    assert cli.main(argv) == 0
    config = cli.build_config(cli._parser().parse_args(argv))
    return config, summary.collect(config)
