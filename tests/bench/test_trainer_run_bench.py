"""bench.trainer_run finds a run's latest artifacts by execution id."""

import pytest

from bench.trainer_run import latest


def test_latest_takes_the_largest_execution_id_as_a_number(tmp_path):
    for execution in ("9", "10", "2"):
        (tmp_path / "Transform" / "transform_graph" / execution).mkdir(parents=True)
    # As text "9" > "10"; the run's latest Transform is execution 10.
    assert latest(str(tmp_path), "Transform/transform_graph/*").endswith("/10")


def test_latest_names_the_missing_artifact(tmp_path):
    with pytest.raises(SystemExit, match="no BehaviorSequenceGen/examples/"):
        latest(str(tmp_path), "BehaviorSequenceGen/examples/*")
