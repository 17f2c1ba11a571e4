"""The compiled IR's resolvers: each query can select only the artifacts meant for it.

TFX 1.16's KFP v2 compiler keeps only the artifact type in a resolver's query (and
`blessed=1` for ModelBlessing); the producer is dropped. So a query is safe only when
exactly one task of the DAG outputs artifacts of the queried type.
"""

import json

import pytest

from pipeline import config as C
from pipeline import kubeflow_v2_runner
from pipeline.kfp_local_store import mlmd_filter, schema_title


def resolver_queries(job: dict) -> dict[str, dict[str, str]]:
    """{resolver task: {output key: filter}}."""
    spec = job["pipelineSpec"]
    result = {}
    for name, task in spec["root"]["dag"]["tasks"].items():
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        executor = spec["deploymentSpec"]["executors"][label]
        if "resolver" in executor:
            queries = executor["resolver"]["outputArtifactQueries"]
            result[name] = {k: q["filter"] for k, q in queries.items()}
    return result


def producers(job: dict, title: str) -> set[tuple[str, str]]:
    """(task, output key) of every container task whose output has schema title `title`."""
    spec, found = job["pipelineSpec"], set()
    for name, task in spec["root"]["dag"]["tasks"].items():
        component = spec["components"][task["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        if "resolver" in executor:
            continue
        for key, out in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            if schema_title(out["artifactType"]) == title:
                found.add((name, key))
    return found


def collisions(job: dict) -> dict[str, set]:
    """{resolver task/key: the producers its query can select} where that is not exactly one."""
    bad = {}
    for task, queries in resolver_queries(job).items():
        for key, query in queries.items():
            (title,) = [c.split("=", 1)[1].strip('"') for c in query.split(" AND ")
                        if c.startswith("schema_title=")]  # fmt: skip
            found = producers(job, title)
            if len(found) != 1:
                bad[f"{task}/{key}"] = found
    return bad


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    data = C.DataConfig(source=C.CSV, path="gs://bucket/data")
    config = C.PipelineConfig(data=data, pipeline_root="gs://bucket/root")
    out = tmp_path_factory.mktemp("ir") / "pipeline.json"
    kubeflow = C.KubeflowConfig(image="img:1", code_root="/opt/recsys", output=str(out))
    kubeflow_v2_runner.compile_pipeline(config, kubeflow)
    with open(out) as f:  # the JSON as written, as KFP / Vertex read it
        return json.load(f)


def test_each_resolver_selects_only_the_baseline_record(job):
    queries = resolver_queries(job)
    assert queries == {
        "latest_baseline_record": {"record": 'schema_title="tfx.File" AND state=LIVE'}
    }
    assert producers(job, "tfx.File") == {("BaselinePublisher", "record")}
    assert collisions(job) == {}
    # No query on the types three components write (both evaluators, ScannIndexBuilder).
    assert producers(job, "tfx.ModelBlessing") == {
        ("retrieval_evaluator", "blessing"),
        ("ranking_evaluator", "blessing"),
        ("ScannIndexBuilder", "blessing"),
    }
    assert "tfx.ModelBlessing" not in json.dumps(queries)
    assert mlmd_filter(queries["latest_baseline_record"]["record"]) == (
        'type = "tfx.File" AND state = LIVE'
    )


def _old_resolvers_compiled() -> dict:
    """The wiring before issue 19, compiled by TFX: a LatestBlessedModelStrategy Resolver
    per family, each naming its trainer and evaluator as producers."""
    from tfx import v1 as tfx
    from tfx.types import standard_artifacts
    from tfx.types.channel import Channel

    resolvers = [
        tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=Channel(type=standard_artifacts.Model, producer_component_id=f"{f}_trainer"),
            model_blessing=Channel(
                type=standard_artifacts.ModelBlessing, producer_component_id=f"{f}_evaluator"
            ),
        ).with_id(f"latest_blessed_{f}")
        for f in ("retrieval", "ranking")
    ]
    pipeline = tfx.dsl.Pipeline(pipeline_name="old", pipeline_root="gs://b/r", components=resolvers)
    config = tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image="img:1")
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(config=config)
    return runner.run(pipeline, write_out=False)


def test_the_check_catches_the_old_per_family_blessing_resolvers(job):
    """The old resolvers as TFX compiles them, beside today's producers: their queries are
    identical and select every component's blessing (both evaluators and the index)."""
    old_spec = _old_resolvers_compiled()["pipelineSpec"]
    queries = resolver_queries({"pipelineSpec": old_spec})
    blessing = [q["model_blessing"] for q in queries.values() if "model_blessing" in q]
    assert len(blessing) == 2 and blessing[0] == blessing[1]  # the defect, as compiled
    merged = json.loads(json.dumps(job))
    spec = merged["pipelineSpec"]
    for key in ("components",):
        spec[key].update(old_spec[key])
    spec["deploymentSpec"]["executors"].update(old_spec["deploymentSpec"]["executors"])
    spec["root"]["dag"]["tasks"].update(old_spec["root"]["dag"]["tasks"])
    bad = collisions(merged)
    assert {
        "latest_blessed_retrieval-model-blessing-resolver/model_blessing",
        "latest_blessed_ranking-model-blessing-resolver/model_blessing",
    } <= set(bad)
    assert ("ScannIndexBuilder", "blessing") in bad[
        "latest_blessed_retrieval-model-blessing-resolver/model_blessing"
    ]
