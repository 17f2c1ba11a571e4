"""create_pipeline wiring: components, dependencies, `until`."""

import dataclasses

import pytest

from pipeline import config as C
from pipeline.pipeline import create_pipeline
from schemas import features as F


@pytest.fixture
def config(tmp_path):
    for table in F.TABLES:
        path = tmp_path / "data" / table / "span-0" / f"{table}.csv"
        path.parent.mkdir(parents=True)
        path.write_text("x\n")
    data = C.DataConfig(source=C.SYNTHETIC, path=str(tmp_path / "data"))
    return C.PipelineConfig(data=data, pipeline_root=str(tmp_path / "root"))


def test_components_and_gating(config):
    pipeline = create_pipeline(config)
    ids = [c.id for c in pipeline.components]
    assert set(ids) >= {
        "interactions_example_gen",
        "items_example_gen",
        "users_example_gen",
        "BehaviorSequenceGen",
        "StatisticsGen",
        "ImportSchemaGen",
        "StrictExampleValidator",
        "Transform",
    }
    by_id = {c.id: c for c in pipeline.components}
    # Anomalies stop training; validation runs beside Transform, not before it.
    for trainer in ("retrieval_trainer", "ranking_trainer"):
        assert "StrictExampleValidator" in {n.id for n in by_id[trainer].upstream_nodes}
    assert "StrictExampleValidator" not in {n.id for n in by_id["Transform"].upstream_nodes}


def test_until_transform_still_validates(config):
    ids = {c.id for c in create_pipeline(config, until="Transform").components}
    assert {"StatisticsGen", "StrictExampleValidator", "Transform"} <= ids
    assert not ids & {"retrieval_trainer", "ranking_trainer"}


def test_until_keeps_only_what_is_needed(config):
    ids = {c.id for c in create_pipeline(config, until="BehaviorSequenceGen").components}
    assert ids == {
        "interactions_example_gen",
        "items_example_gen",
        "users_example_gen",
        "BehaviorSequenceGen",
    }
    with pytest.raises(ValueError, match="components are"):
        create_pipeline(config, until="Trainer2")


@pytest.mark.parametrize("statistics", [False, True])
def test_transform_statistics_follow_the_config(config, statistics):
    pipeline = create_pipeline(dataclasses.replace(config, transform_statistics=statistics))
    transform = next(c for c in pipeline.components if c.id == "Transform")
    assert transform.exec_properties["disable_statistics"] == int(not statistics)
    assert ("post_transform_stats" in transform.outputs) is statistics


def beam_args(pipeline, component_id):
    (component,) = [c for c in pipeline.components if c.id == component_id]
    return list(component.executor_spec.beam_pipeline_args)


def test_the_local_runner_gives_behavior_sequence_gen_its_workers_as_beam_processes(config):
    from pipeline.local_runner import local_config

    parallel = create_pipeline(local_config(config, workers=3))
    assert beam_args(parallel, "BehaviorSequenceGen") == [
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=3",
    ]
    assert beam_args(parallel, "StatisticsGen") == []  # only that component
    assert beam_args(create_pipeline(local_config(config, workers=1)), "BehaviorSequenceGen") == []
    # Beam args the user gave win: nothing is added.
    theirs = dataclasses.replace(config, beam_pipeline_args=("--runner=FlinkRunner",))
    assert local_config(theirs, workers=2) == theirs
