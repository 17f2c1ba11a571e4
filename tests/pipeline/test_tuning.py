"""Tuning in the pipeline: off by default; on, TFX's Tuner feeds the retrieval Trainer."""

import dataclasses
import json

import pytest
from tfx.proto.trainer_pb2 import TrainArgs
from tfx.utils import proto_utils

from models.retrieval.config import RetrievalConfig
from models.retrieval.hyperparameters import TUNING_KEY, SearchSpace
from models.retrieval.sequence import HistoryEncoderSpec
from pipeline import cli
from pipeline import config as C
from pipeline.pipeline import RETRIEVAL_TRAINER, RETRIEVAL_TUNER, create_pipeline
from schemas import features as F


@pytest.fixture
def config(tmp_path):
    for table in F.TABLES:
        path = tmp_path / "data" / table / "span-0" / f"{table}.csv"
        path.parent.mkdir(parents=True)
        path.write_text("x\n")
    data = C.DataConfig(source=C.SYNTHETIC, path=str(tmp_path / "data"))
    return C.PipelineConfig(data=data, pipeline_root=str(tmp_path / "root"))


def test_tuning_is_off_by_default(config):
    by_id = {c.id: c for c in create_pipeline(config).components}
    assert config.tuning is None and RETRIEVAL_TUNER not in by_id
    assert "hyperparameters" not in by_id[RETRIEVAL_TRAINER].inputs


def test_tuner_feeds_the_retrieval_trainer_its_best_hyperparameters(config):
    space = SearchSpace(max_trials=3, epochs=(1, 2))
    tuned = dataclasses.replace(config, tuning=space, train_steps=7)
    by_id = {c.id: c for c in create_pipeline(tuned).components}
    tuner, trainer = by_id[RETRIEVAL_TUNER], by_id[RETRIEVAL_TRAINER]
    channel = trainer.inputs["hyperparameters"]
    assert channel.producer_component_id == RETRIEVAL_TUNER
    assert channel.output_key == "best_hyperparameters"
    assert tuner.exec_properties["tuner_fn"] == "models.retrieval.tuner.tuner_fn"
    train_args = proto_utils.json_to_proto(tuner.exec_properties["train_args"], TrainArgs())
    assert train_args.num_steps == 7  # each trial's cap
    custom = json.loads(tuner.exec_properties["custom_config"])
    assert SearchSpace.from_dict(custom[TUNING_KEY]) == space
    assert RetrievalConfig.from_dict(custom["retrieval"]) == config.retrieval
    # Anomalies stop the search too, as they stop training.
    assert "StrictExampleValidator" in {n.id for n in tuner.upstream_nodes}
    # Ranking does not wait for the search.
    assert RETRIEVAL_TUNER not in {n.id for n in by_id["ranking_trainer"].upstream_nodes}


def test_invalid_tuning_fails_before_the_pipeline_starts(config):
    attention = RetrievalConfig().with_overrides(
        history=HistoryEncoderSpec(kind="self_attention", num_heads=3)
    )
    with pytest.raises(ValueError, match=r"embedding_dim \[16, 32, 64\].*num_heads=3"):
        dataclasses.replace(config, retrieval=attention, tuning=SearchSpace())
    with pytest.raises(ValueError, match="tuning must be a SearchSpace"):
        dataclasses.replace(config, tuning={"max_trials": 2})


def test_cli_tune_flags(tmp_path):
    base = ["run", "--data", "synthetic:tiny", "--work-dir", str(tmp_path)]
    assert cli.build_config(cli._parser().parse_args(base)).tuning is None
    args = cli._parser().parse_args([*base, "--tune", "--tune-trials", "3"])
    assert cli.build_config(args).tuning == SearchSpace(max_trials=3)
    assert cli.main([*base, "--tune", "--tune-trials", "0"]) == 2  # names the field


def test_kubeflow_v2_compiles_the_tuner_into_the_trainers_inputs(tmp_path):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    from pipeline import kubeflow_v2_runner

    data = C.DataConfig(source=C.CSV, path="gs://bucket/data")
    config = C.PipelineConfig(
        data=data, pipeline_root="gs://bucket/root", tuning=SearchSpace(max_trials=2)
    )
    kubeflow = C.KubeflowConfig(image="img:1", output=str(tmp_path / "job.json"))
    job = kubeflow_v2_runner.compile_pipeline(config, kubeflow)
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(job["pipelineSpec"], spec)
    tasks = spec.root.dag.tasks
    assert RETRIEVAL_TUNER in tasks[RETRIEVAL_TRAINER].dependent_tasks
    assert "StrictExampleValidator" in tasks[RETRIEVAL_TUNER].dependent_tasks
    source = tasks[RETRIEVAL_TRAINER].inputs.artifacts["hyperparameters"].task_output_artifact
    assert (source.producer_task, source.output_artifact_key) == (
        RETRIEVAL_TUNER,
        "best_hyperparameters",
    )
