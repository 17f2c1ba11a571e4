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


def test_each_consumer_gets_its_own_familys_baseline(config):
    """One Resolver (the latest record) -> BaselineLoader -> one channel per family."""
    by_id = {c.id: c for c in create_pipeline(config).components}
    expected = {  # (component, input) -> the loader's output
        ("HardNegativeMiner", "retrieval_model"): "retrieval_model",
        ("HardNegativeMiner", "ranking_model"): "ranking_model",
        ("retrieval_trainer", "base_model"): "retrieval_model",
        ("retrieval_evaluator", "baseline_model"): "retrieval_model",
        ("ranking_trainer", "base_model"): "ranking_model",
        ("ranking_evaluator", "baseline_model"): "ranking_model",
    }
    for (component, key), output in expected.items():
        channel = by_id[component].inputs[key]
        assert (channel.producer_component_id, channel.output_key) == ("BaselineLoader", output)
    record = by_id["BaselineLoader"].inputs["record"]
    assert record.producer_component_id == "latest_baseline_record"
    from tfx.types.experimental import simple_artifacts

    assert by_id["latest_baseline_record"].outputs["record"].type is simple_artifacts.File
    assert by_id["BaselinePublisher"].outputs["record"].type is simple_artifacts.File
    publisher = by_id["BaselinePublisher"].inputs
    assert publisher["retrieval_blessing"].producer_component_id == "retrieval_evaluator"
    assert publisher["ranking_blessing"].producer_component_id == "ranking_evaluator"
    assert publisher["previous"].producer_component_id == "latest_baseline_record"


def test_the_summary_says_which_baselines_a_run_had(config):
    from pipeline import summary

    text = summary.render(
        {
            "components": {},
            "counts": {},
            "drops": {},
            "baselines": {
                "no baseline: no baseline record yet (first run)",
                "ranking baseline: /m",
            },
        },
        config,
    )
    assert "  baseline: no baseline: no baseline record yet (first run)" in text
    assert "  baseline: ranking baseline: /m" in text


def test_the_summary_counts_the_items_beyond_a_capped_vocabulary(config):
    from pipeline import summary
    from schemas import features as F

    vocab = {F.ITEM_VOCAB: 1000, F.USER_VOCAB: 50, F.GENRE_VOCAB: 18}
    oov = {"vocabulary": 1000, "items_beyond": 250, "positive_events_beyond": 400,
           "positive_events": 10_000, "oov_buckets": 10}  # fmt: skip
    base = {"components": {}, "counts": {}, "drops": {}}
    text = summary.render({**base, "vocabularies": {**vocab, "item_oov": oov}}, config)
    assert (
        "  items beyond the item vocabulary: 250 items, 400 positive train events (4.0%) "
        "share its 10 OOV buckets" in text
    )
    none = {**oov, "items_beyond": 0, "positive_events_beyond": 0}
    text = summary.render({**base, "vocabularies": {**vocab, "item_oov": none}}, config)
    assert "beyond the item vocabulary" not in text


@pytest.mark.parametrize("materialize", [False, True])
def test_the_trainers_read_transforms_examples_only_when_it_materializes_them(config, materialize):
    from models.retrieval.hyperparameters import SearchSpace

    cfg = dataclasses.replace(config, transform_materialize=materialize, tuning=SearchSpace())
    by_id = {c.id: c for c in create_pipeline(cfg).components}
    assert ("transformed_examples" in by_id["Transform"].outputs) is materialize
    want = (
        ("Transform", "transformed_examples")
        if materialize
        else ("BehaviorSequenceGen", "examples")
    )
    for node in ("retrieval_trainer", "ranking_trainer", "retrieval_tuner"):
        channel = by_id[node].inputs["examples"]
        assert (channel.producer_component_id, channel.output_key) == want, node
        assert by_id[node].inputs["transform_graph"].producer_component_id == "Transform"
