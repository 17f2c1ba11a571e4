"""The KFP v2 / Vertex AI IR compiled from create_pipeline(config), read with kfp's protobufs."""

import json
import os

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from components import update_mode as U
from components.ranking_evaluator.executor import with_min_auc
from components.retrieval_trainer.executor import with_update_mode
from pipeline import config as C
from pipeline import kfp_params as P
from pipeline import kubeflow_v2_runner, runtime
from pipeline.pipeline import create_pipeline
from tests.pipeline.kfp_server import FakeKfpServer

IMAGE = "registry.example/recsys-tfx:test"
BEAM_ARGS = ("--runner=DataflowRunner", "--project=my-project", "--region=europe-west1")
MINIMUM = {
    "interactions_example_gen",
    "items_example_gen",
    "users_example_gen",
    "BehaviorSequenceGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "StrictExampleValidator",
    "Transform",
    "retrieval_trainer",
    "ranking_trainer",
    "retrieval_evaluator",
    "ranking_evaluator",
}
EDGES = [  # (upstream, downstream)
    ("interactions_example_gen", "BehaviorSequenceGen"),
    ("items_example_gen", "BehaviorSequenceGen"),
    ("users_example_gen", "BehaviorSequenceGen"),
    ("BehaviorSequenceGen", "StatisticsGen"),
    ("StatisticsGen", "StrictExampleValidator"),
    ("ImportSchemaGen", "StrictExampleValidator"),
    ("BehaviorSequenceGen", "Transform"),
    ("StrictExampleValidator", "retrieval_trainer"),
    ("StrictExampleValidator", "ranking_trainer"),
    ("Transform", "retrieval_trainer"),
    ("Transform", "ranking_trainer"),
    ("retrieval_trainer", "retrieval_evaluator"),
    ("ranking_trainer", "ranking_evaluator"),
    ("latest_baseline_record", "BaselineLoader"),
    ("BaselineLoader", "retrieval_trainer"),
    ("BaselineLoader", "ranking_trainer"),
    ("BaselineLoader", "HardNegativeMiner"),
    ("BaselineLoader", "retrieval_evaluator"),
    ("BaselineLoader", "ranking_evaluator"),
    ("retrieval_evaluator", "BaselinePublisher"),
    ("ranking_evaluator", "BaselinePublisher"),
    ("latest_baseline_record", "BaselinePublisher"),
]
TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"


@pytest.fixture(scope="module")
def config():
    data = C.DataConfig(source=C.CSV, path="gs://bucket/data")
    return C.PipelineConfig(
        data=data,
        pipeline_root="gs://bucket/root",
        train_steps=300,
        ranking_min_auc=0.6,
        beam_pipeline_args=BEAM_ARGS,
    )


@pytest.fixture(scope="module")
def kubeflow(tmp_path_factory):
    out = tmp_path_factory.mktemp("kfp") / "recommender_pipeline.json"
    return C.KubeflowConfig(image=IMAGE, code_root="/opt/recsys", output=str(out))


@pytest.fixture(scope="module")
def job(config, kubeflow):
    return kubeflow_v2_runner.compile_pipeline(config, kubeflow)


@pytest.fixture(scope="module")
def spec(job):
    parsed = pipeline_spec_pb2.PipelineJob()
    json_format.ParseDict(job, parsed)  # the whole PipelineJob is valid
    result = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(job["pipelineSpec"], result)
    return result


@pytest.fixture(scope="module")
def component_ids(config):
    return {c.id for c in create_pipeline(config).components}


def _task_names(component_id, spec):
    tasks = spec.root.dag.tasks
    if component_id in tasks:
        return [component_id]
    resolvers = [f"{component_id}-model-resolver", f"{component_id}-model-blessing-resolver"]
    return [name for name in resolvers if name in tasks]


def test_every_component_is_a_task(spec, component_ids):
    assert component_ids >= MINIMUM
    for component_id in component_ids:
        assert _task_names(component_id, spec), f"{component_id} is not in the IR"
    assert spec.pipeline_info.name == C.PipelineConfig.name
    assert spec.schema_version == "2.1.0"


def test_runtime_parameters_are_declared_with_defaults(spec, job, config):
    blessing = {P.RETRIEVAL_PREFIX + k: v for k, v in vars(config.retrieval_blessing).items()}
    expected = {
        P.DATA_ROOT: "gs://bucket/data",
        P.TRAIN_ARGS: '{"num_steps": 300}',
        P.EVAL_ARGS: '{"num_steps": 0}',
        P.RANKING_MIN_AUC: 0.6,
        P.UPDATE_MODE: "full",
        **blessing,
    }
    inputs = spec.root.input_definitions.parameters
    assert set(inputs) == set(expected)
    for name, value in expected.items():
        kind = "NUMBER_DOUBLE" if isinstance(value, float) else "STRING"
        assert (
            pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(inputs[name].parameter_type)
            == kind
        )
        assert inputs[name].is_optional
        assert json_format.MessageToDict(inputs[name].default_value) == value
    assert job["runtimeConfig"]["parameterValues"] == expected
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"


def _param_source(spec, task, name):
    return spec.root.dag.tasks[task].inputs.parameters[name].component_input_parameter


def test_runtime_parameters_reach_their_components(spec):
    for table in ("interactions", "items", "users"):
        assert _param_source(spec, f"{table}_example_gen", "input_base") == P.DATA_ROOT
    for trainer in ("retrieval_trainer", "ranking_trainer"):
        assert _param_source(spec, trainer, "train_args") == P.TRAIN_ARGS
        assert _param_source(spec, trainer, "eval_args") == P.EVAL_ARGS
    for trainer in ("retrieval_trainer", "ranking_trainer"):
        assert _param_source(spec, trainer, P.UPDATE_MODE) == P.UPDATE_MODE
    assert _param_source(spec, "ranking_evaluator", P.RANKING_MIN_AUC) == P.RANKING_MIN_AUC
    for name in ("min_hr_at_10", "min_ndcg_at_10", "min_coverage_at_10", "max_regression"):
        source = _param_source(spec, "retrieval_evaluator", name)
        assert source == P.RETRIEVAL_PREFIX + name


def _executor(spec, task):
    label = spec.components[spec.root.dag.tasks[task].component_ref.name].executor_label
    return spec.deployment_spec["executors"][label]


def test_every_container_runs_the_image_and_code_by_dotted_path(spec, job):
    containers = 0
    for task in spec.root.dag.tasks:
        executor = _executor(spec, task)
        if "resolver" in executor:
            continue
        containers += 1
        container = executor["container"]
        assert container["image"] == IMAGE, task
        assert list(container["command"])[-1] == TFX_ENTRYPOINT
        args = list(container["args"])
        class_path = args[args.index("--executor_class_path") + 1]
        assert class_path.count(".") >= 2, class_path
    assert containers >= len(MINIMUM)
    text = json.dumps(job)
    assert "module_file" not in text and "module_path" not in text
    assert runtime.REPO_ROOT not in text  # no path of this machine
    schema = spec.root.dag.tasks["ImportSchemaGen"].inputs.parameters["schema_file"]
    assert schema.runtime_value.constant.string_value == "/opt/recsys/schemas/schema.pbtxt"
    retrieval = list(_executor(spec, "retrieval_trainer")["container"]["args"])
    # Each component runs its own executor, chosen in create_pipeline (none swapped later).
    assert "components.retrieval_trainer.executor.Executor" in retrieval
    ranking = list(_executor(spec, "ranking_trainer")["container"]["args"])
    assert "components.ranking_trainer.component.Executor" in ranking
    evaluator = list(_executor(spec, "ranking_evaluator")["container"]["args"])
    assert "components.ranking_evaluator.executor.Executor" in evaluator


def test_beam_args_reach_the_beam_stages(spec):
    for task in ("BehaviorSequenceGen", "StatisticsGen", "Transform", "ranking_evaluator"):
        args = list(_executor(spec, task)["container"]["args"])
        assert args[-len(BEAM_ARGS) :] == list(BEAM_ARGS), task


def test_dag_edges(spec, config):
    tasks = spec.root.dag.tasks
    for upstream, downstream in EDGES:
        assert upstream in tasks[downstream].dependent_tasks, (upstream, downstream)
    for component in create_pipeline(config).components:  # every edge the DSL has
        for node in component.upstream_nodes:
            names = _task_names(node.id, spec)
            assert set(names) & set(tasks[component.id].dependent_tasks), (node.id, component.id)


def test_compiling_twice_gives_identical_bytes(config, kubeflow, job):
    with open(kubeflow.output, "rb") as f:
        first = f.read()
    again = kubeflow_v2_runner.compile_job(config, kubeflow)
    assert again == job
    second = os.path.join(os.path.dirname(kubeflow.output), "again.json")
    kubeflow_v2_runner.write_json(again, second)
    with open(second, "rb") as f:
        assert f.read() == first
    assert not [n for n in os.listdir(os.path.dirname(second)) if n.startswith(".tmp-")]


@pytest.mark.parametrize(
    "field, kwargs",
    [
        ("pipeline_root", {"pipeline_root": "/tmp/root"}),
        ("data.path", {"data": C.DataConfig(source=C.CSV, path="/tmp")}),
        ("metadata_path", {"metadata_path": "/tmp/m.sqlite"}),
    ],
)
def test_local_roots_are_refused(config, kubeflow, field, kwargs):
    import dataclasses

    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        kubeflow_v2_runner.compile_job(dataclasses.replace(config, **kwargs), kubeflow)


def test_update_mode_goes_into_the_retrieval_custom_config(config):
    trainer = next(c for c in create_pipeline(config).components if c.id == "retrieval_trainer")
    props = dict(trainer.exec_properties, update_mode="incremental")
    patched = with_update_mode(props)
    assert "update_mode" not in patched
    before, after = json.loads(props["custom_config"]), json.loads(patched["custom_config"])
    before_mode, after_mode = before["retrieval"]["updates"], after["retrieval"]["updates"]
    assert before_mode["mode"] == "full" and after_mode["mode"] == "incremental"
    after_mode["mode"] = "full"
    assert after == before  # nothing else changed
    assert with_update_mode({"custom_config": "{}", "update_mode": None}) == {"custom_config": "{}"}
    with pytest.raises(ValueError, match="update_mode='weekly'"):
        with_update_mode(dict(props, update_mode="weekly"))


def test_min_auc_goes_into_the_auc_threshold_only(config):
    import tensorflow_model_analysis as tfma
    from tfx.utils import proto_utils

    evaluator = next(c for c in create_pipeline(config).components if c.id == "ranking_evaluator")
    props = dict(evaluator.exec_properties, ranking_min_auc=0.72)
    patched = with_min_auc(props)
    assert "ranking_min_auc" not in patched
    before = proto_utils.json_to_proto(props["eval_config"], tfma.EvalConfig())
    after = proto_utils.json_to_proto(patched["eval_config"], tfma.EvalConfig())
    (auc,) = [m for s in after.metrics_specs for m in s.metrics if m.class_name == "AUC"]
    (threshold,) = auc.per_slice_thresholds
    assert threshold.threshold.value_threshold.lower_bound.value == 0.72
    assert threshold.threshold.change_threshold.absolute.value == -0.01  # unchanged
    threshold.threshold.value_threshold.lower_bound.value = 0.6
    assert after == before  # nothing else changed
    with pytest.raises(ValueError, match="must be in"):
        with_min_auc(dict(props, ranking_min_auc=1.5))
    with pytest.raises(ValueError, match="no AUC value threshold"):
        with_min_auc({"eval_config": "{}", "ranking_min_auc": 0.5})


def test_submit_the_compiled_pipeline(kubeflow, spec):
    from pipeline import cli

    with FakeKfpServer() as server:
        argv = ["kfp", "submit", "--host", server.url, "--package", kubeflow.output]
        params = ["--param", "update=incremental", "--param", "retrieval_min_hr_at_10=0.05"]
        assert cli.main(argv + params) == 0
        (upload,) = server.calls("POST", "/pipelines/upload")
        uploaded = pipeline_spec_pb2.PipelineSpec()
        json_format.ParseDict(yaml.safe_load(upload.upload), uploaded)
        assert uploaded == spec
        (run,) = server.calls("POST", "/runs")
        assert run.body["runtime_config"]["parameters"] == {
            P.UPDATE_MODE: "incremental",
            "retrieval_min_hr_at_10": 0.05,
        }
        assert run.body["runtime_config"]["pipeline_root"] == "gs://bucket/root"


def test_create_pipeline_places_the_runtime_parameters(config):
    """The KFP parameters are wired by create_pipeline itself; local runs get plain values."""
    compiled = {
        c.id: c for c in create_pipeline(config, parameters=runtime.parameters(config)).components
    }
    trainer = compiled["retrieval_trainer"]
    assert (
        trainer.executor_spec.executor_class.__module__ == "components.retrieval_trainer.executor"
    )
    assert trainer.exec_properties[P.UPDATE_MODE].name == P.UPDATE_MODE
    assert compiled["ranking_trainer"].exec_properties[P.UPDATE_MODE].name == P.UPDATE_MODE
    assert trainer.exec_properties[P.TRAIN_ARGS].default == '{"num_steps": 300}'
    assert (
        compiled["ranking_evaluator"].exec_properties[P.RANKING_MIN_AUC].name == P.RANKING_MIN_AUC
    )
    local = {c.id: c for c in create_pipeline(config).components}
    assert local["retrieval_trainer"].exec_properties.get(P.UPDATE_MODE) is None
    assert local["ranking_evaluator"].exec_properties.get(P.RANKING_MIN_AUC) is None
    for component_id in ("retrieval_trainer", "ranking_trainer", "ranking_evaluator"):
        assert (
            local[component_id].executor_spec.executor_class
            is compiled[component_id].executor_spec.executor_class
        )


def test_kfp_container_entrypoint_reads_the_parameters_the_executors_apply(spec):
    """Parameter values as KFP passes them, parsed by TFX's container entrypoint code."""
    from google.protobuf import struct_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as E

    def exec_properties(task, values):
        args = list(_executor(spec, task)["container"]["args"])
        inputs = pipeline_spec_pb2.ComponentInputsSpec()
        json_format.Parse(args[args.index("--json_serialized_inputs_spec_args") + 1], inputs)
        defaults = spec.components[spec.root.dag.tasks[task].component_ref.name]
        assert set(values) <= set(defaults.input_definitions.parameters)
        constants = spec.root.dag.tasks[task].inputs.parameters
        sent = {
            k: v.runtime_value.constant for k, v in constants.items() if v.HasField("runtime_value")
        }
        sent.update({k: struct_pb2.Value(**v) for k, v in values.items()})
        return E.parse_execution_properties(sent, {}, inputs)

    props = exec_properties("ranking_evaluator", {P.RANKING_MIN_AUC: {"number_value": 0.7}})
    assert props[P.RANKING_MIN_AUC] == 0.7
    assert '"lower_bound": 0.7' in with_min_auc(props)["eval_config"]
    props = exec_properties("retrieval_trainer", {P.UPDATE_MODE: {"string_value": "incremental"}})
    custom = json.loads(with_update_mode(props)["custom_config"])
    assert custom["retrieval"]["updates"]["mode"] == "incremental"
    props = exec_properties("ranking_trainer", {P.UPDATE_MODE: {"string_value": "incremental"}})
    custom = json.loads(U.with_update_mode(props, "ranking")["custom_config"])
    assert custom["ranking"]["mode"] == "incremental" and "retrieval" not in custom
