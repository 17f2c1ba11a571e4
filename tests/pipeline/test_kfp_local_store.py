"""The local IR executor's MLMD store: KFP filters run as ML Metadata filter queries."""

import pytest

from pipeline.kfp_local_store import Store, dag_order, mlmd_filter

FILE = {"instanceSchema": "title: tfx.File\ntype: object\n"}
BLESSING = {"instanceSchema": "title: tfx.ModelBlessing\ntype: object\n"}


def test_filters_are_translated_clause_by_clause():
    kfp = 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
    assert mlmd_filter(kfp).split(" AND ") == [
        'type = "tfx.ModelBlessing"',
        "state = LIVE",
        "custom_properties.blessed.double_value = 1.0",
    ]
    placeholder = "name=\"{{$.inputs.artifacts['input'].metadata['current_model_id']}}\""
    inputs = {"input": [{"metadata": {"current_model_id": "run-1/trainer/model"}}]}
    assert mlmd_filter(placeholder, inputs) == 'name = "run-1/trainer/model"'
    with pytest.raises(ValueError, match="unknown clause 'uri LIKE'"):
        mlmd_filter('schema_title="tfx.File" AND uri LIKE')


def _output(name, kind, metadata):
    return {"name": name, "type": kind, "uri": f"/tmp/{name}", "metadata": metadata}


def test_newest_match_of_the_queried_type_only(tmp_path):
    store = Store(str(tmp_path / "m.sqlite"))
    query = 'schema_title="tfx.File" AND state=LIVE'
    assert store.newest(query, {}) == []  # nothing yet: a first run, not an error
    run = store.run_context("run-1")
    store.record(run, "publisher", {}, {"record": [_output("r1", FILE, {})]})
    store.record(run, "evaluator", {}, {"blessing": [_output("b1", BLESSING, {"blessed": 1})]})
    run2 = store.run_context("run-2")
    store.record(run2, "publisher", {}, {"record": [_output("r2", FILE, {"note": "x"})]})
    (newest,) = store.newest(query, {})
    assert newest["name"] == "r2" and newest["metadata"] == {"note": "x"}
    assert newest["type"] == {"schemaTitle": "tfx.File"}
    blessed = 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
    assert [a["name"] for a in store.newest(blessed, {})] == ["b1"]


def test_dag_order_follows_dependencies_and_refuses_cycles():
    tasks = {
        "c": {"inputs": {"artifacts": {"x": {"taskOutputArtifact": {"producerTask": "b"}}}}},
        "b": {"dependentTasks": ["a"]},
        "a": {},
    }
    assert dag_order(tasks) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="cycle"):
        dag_order({"a": {"dependentTasks": ["b"]}, "b": {"dependentTasks": ["a"]}})
