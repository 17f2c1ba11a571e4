"""Trainers on Vertex AI: what a KFP compile with `vertex_training` sends to Vertex.

The compiled IR's trainer tasks must run the VertexExecutors, with the CustomJob (chief
pool + workers - 1) and the multi-worker strategy in their custom_config; TFX's own
Vertex client must turn that into replicas that run this repository's Executors.
"""

import argparse
import json

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.extensions.google_cloud_ai_platform import runner, training_clients

from components.ranking_trainer import component as ranking_component
from components.retrieval_trainer import executor as retrieval_executor
from pipeline import config as C
from pipeline import kfp_cli, kubeflow_v2_runner

IMAGE = "europe-docker.pkg.dev/p/recsys/tfx:7"
VERTEX = C.VertexTraining(
    project="my-project", region="europe-west4", image=IMAGE, machine_type="n1-highmem-16",
    workers=3,
)  # fmt: skip
EXECUTORS = {
    "retrieval_trainer": "components.retrieval_trainer.executor",
    "ranking_trainer": "components.ranking_trainer.component",
}


def compile_spec(tmp_path, vertex):
    data = C.DataConfig(source=C.CSV, path="gs://bucket/data")
    config = C.PipelineConfig(data=data, pipeline_root="gs://bucket/root", vertex_training=vertex)
    out = tmp_path / f"pipeline-{bool(vertex)}.json"
    kubeflow = C.KubeflowConfig(image=IMAGE, code_root="/opt/recsys", output=str(out))
    kubeflow_v2_runner.compile_pipeline(config, kubeflow)
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(json.loads(out.read_text())["pipelineSpec"], spec)
    return spec


def task_executor_and_config(spec, task):
    label = spec.components[spec.root.dag.tasks[task].component_ref.name].executor_label
    args = list(spec.deployment_spec["executors"][label]["container"]["args"])
    params = spec.root.dag.tasks[task].inputs.parameters
    custom = json.loads(params["custom_config"].runtime_value.constant.string_value)
    return args[args.index("--executor_class_path") + 1], custom


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    root = tmp_path_factory.mktemp("vertex")
    return compile_spec(root, VERTEX), compile_spec(root, None)


@pytest.mark.parametrize("task", sorted(EXECUTORS))
def test_the_trainers_run_as_vertex_jobs_of_the_configured_shape(compiled, task):
    vertex_spec, plain_spec = compiled
    class_path, custom = task_executor_and_config(vertex_spec, task)
    assert class_path == f"{EXECUTORS[task]}.VertexExecutor"
    job = custom["ai_platform_training_args"]
    assert job["project"] == "my-project"
    pools = job["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]  # the chief, then 2 workers
    for pool in pools:
        assert pool["machine_spec"] == {"machine_type": "n1-highmem-16"}
        assert pool["container_spec"] == {"image_uri": IMAGE}
    assert custom["ai_platform_enable_vertex"] is True
    assert custom["ai_platform_vertex_region"] == "europe-west4"
    model = custom["retrieval"]["training"] if task == "retrieval_trainer" else custom["ranking"]
    assert model["strategy"] == "multi_worker"

    plain_path, plain = task_executor_and_config(plain_spec, task)
    assert plain_path == f"{EXECUTORS[task]}.Executor"
    assert "ai_platform_training_args" not in plain
    plain_model = (
        plain["retrieval"]["training"] if task == "retrieval_trainer" else plain["ranking"]
    )
    assert plain_model["strategy"] == "default"


@pytest.mark.parametrize(
    "vertex_executor, executor",
    [
        (retrieval_executor.VertexExecutor, retrieval_executor.Executor),
        (ranking_component.VertexExecutor, ranking_component.Executor),
    ],
)
def test_every_replica_runs_this_repositorys_executor(monkeypatch, vertex_executor, executor):
    from pipeline.wiring import custom_job

    launched = {}
    monkeypatch.setattr(
        runner,
        "start_cloud_training",
        lambda *args: launched.update(
            zip(("inputs", "outputs", "props", "path", "job"), args, strict=False)
        ),
    )
    props = {
        "custom_config": json.dumps(
            {
                "ai_platform_training_args": custom_job(VERTEX),
                "ai_platform_enable_vertex": True,
                "ai_platform_vertex_region": VERTEX.region,
            }
        )
    }
    vertex_executor().Do({}, {}, props)
    assert launched["path"] == f"{executor.__module__}.{executor.__qualname__}"
    # TFX's Vertex client (no GCP call: only the job body is built) puts that path in
    # every pool's container command.
    client = object.__new__(training_clients.VertexJobClient)
    body = client.create_training_job({}, {}, {}, launched["path"], launched["job"], None, None)
    pools = body["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]
    for pool in pools:
        command = pool["container_spec"]["command"]
        assert command[command.index("--executor_class_path") + 1] == launched["path"]
        assert pool["container_spec"]["image_uri"] == IMAGE


def test_one_worker_trains_mirrored_with_no_worker_pool():
    from pipeline.wiring import custom_job

    one = C.VertexTraining(project="p", region="r", image="i", workers=1)
    assert one.strategy == "mirrored"
    assert [p["replica_count"] for p in custom_job(one)["job_spec"]["worker_pool_specs"]] == [1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workers": 0}, "vertex_training.workers must be an int >= 1"),
        ({"project": ""}, "vertex_training.project must be a non-empty word"),
        ({"accelerator_type": "NVIDIA_TESLA_T4"}, "accelerator_type and accelerator_count"),
    ],
)
def test_a_bad_job_shape_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        C.VertexTraining(**{"project": "p", "region": "r", "image": "i", **kwargs})


def test_the_compile_flags_make_the_shape():
    parser = argparse.ArgumentParser()
    kfp_cli._compile_args(parser)
    base = ["--pipeline-root", "gs://b/r", "--data-root", "gs://b/d", "--image", IMAGE]
    args = parser.parse_args(base + ["--vertex-project", "p", "--vertex-workers", "4"])
    shape = kfp_cli.vertex_training(args)
    assert (shape.project, shape.workers, shape.image, shape.strategy) == (
        "p", 4, IMAGE, "multi_worker",
    )  # fmt: skip
    assert kfp_cli.vertex_training(parser.parse_args(base)) is None
    with pytest.raises(ValueError, match="--vertex-workers need --vertex-project"):
        kfp_cli.vertex_training(parser.parse_args(base + ["--vertex-workers", "4"]))
