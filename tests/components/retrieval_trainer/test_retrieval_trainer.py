"""RetrievalTrainer: spec, the custom-config hook, and a KFP v2 compile (no training here)."""

import json
import os

import pytest
from tfx import types
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from components import update_mode
from components.hard_negative_miner import mining
from components.hard_negative_miner.component import HardNegativeMiner, HardNegatives
from components.retrieval_trainer import executor
from components.retrieval_trainer.component import RETRIEVAL_RUN_FN, RetrievalTrainer
from models.retrieval.config import CUSTOM_CONFIG_KEY, RetrievalConfig


def _trainer(**kwargs):
    return RetrievalTrainer(
        examples=types.Channel(type=standard_artifacts.Examples),
        transform_graph=types.Channel(type=standard_artifacts.TransformGraph),
        custom_config={CUSTOM_CONFIG_KEY: {"epochs": 2}},
        **kwargs,
    )


def test_spec_adds_an_optional_hard_negatives_input_and_keeps_the_outputs():
    trainer = _trainer(hard_negatives=types.Channel(type=HardNegatives))
    assert isinstance(trainer, tfx.components.Trainer)
    assert trainer.inputs["hard_negatives"].type == HardNegatives
    assert set(trainer.outputs) == {"model", "model_run"}
    assert trainer.outputs["model"].type == standard_artifacts.Model
    props = trainer.exec_properties
    assert props["run_fn"] == RETRIEVAL_RUN_FN and "module_file" not in props
    assert json.loads(props["custom_config"]) == {CUSTOM_CONFIG_KEY: {"epochs": 2}}
    assert "hard_negatives" not in _trainer().inputs  # optional


def _tsv(tmp_path, text):
    path = str(tmp_path / mining.TSV_FILE)
    mining.write_atomic(path, text)
    return path


def test_a_non_empty_file_is_put_into_the_retrieval_config(tmp_path):
    path = _tsv(tmp_path, "u1\ta b\n")
    given = {CUSTOM_CONFIG_KEY: {"epochs": 2}, "other": 1}  # a former flat config
    out = executor.with_mined_negatives(given, path)
    expected = RetrievalConfig().with_overrides(epochs=2, mined_negatives_path=path)
    assert out == {CUSTOM_CONFIG_KEY: expected.to_dict(), "other": 1}  # the nested form
    assert given == {CUSTOM_CONFIG_KEY: {"epochs": 2}, "other": 1}  # not mutated
    assert executor.with_mined_negatives(None, path) == {
        CUSTOM_CONFIG_KEY: RetrievalConfig().with_overrides(mined_negatives_path=path).to_dict()
    }


@pytest.mark.parametrize("text", ["", "\n# a comment\n", "u1\t\n"])
def test_no_input_or_an_empty_file_leaves_the_config_unchanged(tmp_path, text):
    given = {CUSTOM_CONFIG_KEY: {"epochs": 2}}
    assert executor.with_mined_negatives(given, None) is given
    assert executor.with_mined_negatives(given, _tsv(tmp_path, text)) is given


def test_sampled_softmax_does_not_get_the_file(tmp_path):
    for loss in ("sampled_softmax", {"type": "sampled_softmax", "num_sampled": 64}):
        given = {CUSTOM_CONFIG_KEY: {"loss": loss}}
        assert executor.with_mined_negatives(given, _tsv(tmp_path, "u1\ta\n")) is given


def test_the_update_mode_parameter_wins_over_the_nested_config():
    nested = RetrievalConfig().with_overrides(mode="full").to_dict()
    props = {"custom_config": json.dumps({CUSTOM_CONFIG_KEY: nested}), "update_mode": "incremental"}
    custom = json.loads(executor.with_update_mode(props)["custom_config"])
    assert RetrievalConfig.from_dict(custom[CUSTOM_CONFIG_KEY]).updates.mode == "incremental"
    assert update_mode.UPDATE_MODE == "update_mode"


def test_mined_file_path_from_the_input_dict():
    artifact = HardNegatives()
    artifact.uri = "/some/uri"
    assert executor.mined_file({"hard_negatives": [artifact]}) == "/some/uri/hard_negatives.tsv"
    assert executor.mined_file({"hard_negatives": []}) is None
    assert executor.mined_file({}) is None


def test_compiles_for_kubeflow_v2(tmp_path):
    """Miner -> RetrievalTrainer compiles to KFP v2 IR with the new input and artifact type."""

    def imported(name, artifact_type):
        return tfx.dsl.Importer(source_uri=f"gs://b/{name}", artifact_type=artifact_type).with_id(
            name
        )

    examples = imported("examples", standard_artifacts.Examples)
    catalog = imported("catalog", standard_artifacts.Examples)
    transformed = imported("transformed", standard_artifacts.Examples)
    graph = imported("graph", standard_artifacts.TransformGraph)
    miner = HardNegativeMiner(
        examples=examples.outputs["result"], catalog=catalog.outputs["result"]
    )
    trainer = RetrievalTrainer(
        examples=transformed.outputs["result"],
        transform_graph=graph.outputs["result"],
        hard_negatives=miner.outputs["hard_negatives"],
        train_args=tfx.proto.TrainArgs(num_steps=5),
    )
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="hard-negatives",
        pipeline_root="gs://b/root",
        components=[examples, catalog, transformed, graph, miner, trainer],
    )
    out = str(tmp_path / "pipeline.json")
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image="img"),
        output_filename=out,
    )
    runner.run(pipeline, write_out=True)
    spec = json.load(open(out))["pipelineSpec"]
    trainer_inputs = spec["components"]["RetrievalTrainer"]["inputDefinitions"]["artifacts"]
    # A custom type travels as an instance schema titled with its TYPE_NAME.
    assert f"title: {HardNegatives.TYPE_NAME}" in json.dumps(trainer_inputs["hard_negatives"])
    executors = json.dumps(spec["deploymentSpec"]["executors"])
    assert "components.retrieval_trainer.executor.Executor" in executors
    assert "components.hard_negative_miner.executor.Executor" in executors
    assert os.path.getsize(out) > 0


def test_the_kfp_container_can_import_the_artifact_types():
    """KFP v2's entrypoint imports a custom artifact class by its schema title."""
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as entry
    from tfx.utils import import_utils

    from components.scann_index_builder.component import ItemIndex

    for artifact_type in (HardNegatives, ItemIndex):
        schema = pipeline_spec_pb2.ArtifactTypeSchema(
            instance_schema=f"title: {artifact_type.TYPE_NAME}\ntype: object\n"
        )
        path = entry._retrieve_class_path(schema)
        assert import_utils.import_class_by_path(path) is artifact_type
