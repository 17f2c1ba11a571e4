"""Per-family baselines: the record's carry-forward, the loader's kind checks, the consumers'
"no baseline" on missing, empty or wrong-kind inputs."""

import json
import os

import pytest
from tensorflow.core.protobuf import saved_model_pb2
from tfx.types import standard_artifacts
from tfx.types.experimental import simple_artifacts

from components import baseline_inputs as B
from components.baselines import executor as X
from components.baselines import record as R


def saved_model(uri: str, signatures) -> str:
    """A model artifact directory whose Format-Serving/saved_model.pb has these signatures."""
    proto = saved_model_pb2.SavedModel()
    graph = proto.meta_graphs.add()
    for name in signatures:
        graph.signature_def[name].method_name = "tensorflow/serving/predict"
    os.makedirs(os.path.join(uri, B.SERVING_DIR))
    with open(os.path.join(uri, B.SERVING_DIR, B.SAVED_MODEL), "wb") as f:
        f.write(proto.SerializeToString())
    with open(os.path.join(uri, "item_embeddings.npz"), "wb") as f:
        f.write(b"x")
    return uri


def artifact(kind, uri):
    a = kind()
    a.uri = str(uri)
    return a


@pytest.fixture
def models(tmp_path):
    return {
        "retrieval": saved_model(str(tmp_path / "r"), B.FAMILY_SIGNATURES["retrieval"]),
        "ranking": saved_model(str(tmp_path / "k"), ["serving_default", "score_candidates"]),
        "other": saved_model(str(tmp_path / "o"), ["serving_default"]),
    }


def test_next_record_takes_blessed_models_and_carries_the_rest():
    first = R.next_record(None, {"retrieval": ("r1", True), "ranking": ("k1", False)})
    assert first == {"retrieval": {"model_uri": "r1", "source": "blessed"}}
    second = R.next_record(first, {"retrieval": ("r2", False), "ranking": ("k2", True)})
    assert second == {
        "retrieval": {"model_uri": "r1", "source": "carried"},
        "ranking": {"model_uri": "k2", "source": "blessed"},
    }
    assert R.next_record({"retrieval": "not an entry"}, {}) == {}


def test_family_is_read_from_the_signatures(models, tmp_path):
    assert B.family_of(models["retrieval"]) == "retrieval"
    assert B.family_of(models["ranking"]) == "ranking"
    assert B.family_of(models["other"]) is None
    assert B.family_of(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    "which, status",
    [
        (None, "no baseline: no ranking model resolved (first run)"),
        ("empty", "no baseline: no ranking SavedModel at"),
        ("retrieval", "is a retrieval model, not a ranking model"),
        ("ranking", "ranking baseline: "),
    ],
)
def test_consumers_drop_unusable_baselines(models, tmp_path, which, status):
    empty = tmp_path / "empty"
    empty.mkdir()
    uri = {None: None, "empty": empty}.get(which, models.get(which))
    given = [artifact(standard_artifacts.Model, uri)] if uri else []
    inputs, statuses = B.filter_inputs(
        {"base_model": given, "x": [1]}, {"base_model": "ranking"}, "T"
    )
    assert status in statuses["base_model"]
    assert inputs["base_model"] == (given if which == "ranking" else [])
    assert inputs["x"] == [1]


def _loader_outputs(tmp_path):
    return {
        f"{f}_model": [artifact(standard_artifacts.Model, tmp_path / f"out_{f}")]
        for f in R.FAMILIES
    }


def test_publisher_then_loader_hand_each_family_its_own_model(models, tmp_path):
    blessed, rejected = tmp_path / "b1", tmp_path / "b0"
    blessed.mkdir(), rejected.mkdir()
    (blessed / "BLESSED").write_text("")
    (rejected / "NOT_BLESSED").write_text("")
    record = artifact(simple_artifacts.File, tmp_path / "record")
    X.PublisherExecutor().Do(
        {
            "retrieval_model": [artifact(standard_artifacts.Model, models["retrieval"])],
            "retrieval_blessing": [artifact(standard_artifacts.ModelBlessing, blessed)],
            "ranking_model": [artifact(standard_artifacts.Model, models["ranking"])],
            "ranking_blessing": [artifact(standard_artifacts.ModelBlessing, rejected)],
        },
        {"record": [record]},
        {},
    )
    written = json.loads((tmp_path / "record" / R.RECORD_FILE).read_text())
    assert written == {"retrieval": {"model_uri": models["retrieval"], "source": "blessed"}}
    outputs = _loader_outputs(tmp_path)
    X.LoaderExecutor().Do({"record": [record]}, outputs, {})
    retrieval, ranking = outputs["retrieval_model"][0], outputs["ranking_model"][0]
    assert B.family_of(retrieval.uri) == "retrieval"
    assert os.path.exists(os.path.join(retrieval.uri, "item_embeddings.npz"))
    assert retrieval.get_string_custom_property(B.STATUS_PROPERTY).startswith("retrieval baseline")
    assert B.family_of(ranking.uri) is None
    assert "no blessed ranking model yet" in ranking.get_string_custom_property(B.STATUS_PROPERTY)


@pytest.mark.parametrize(
    "content, why",
    [
        (None, "first run"),
        ("not json", "is not a JSON record"),
        ("[1]", "not an object"),
        ("WRONG", "holds a ranking model"),
    ],
)
def test_loader_never_crashes_on_a_bad_or_missing_record(models, tmp_path, content, why):
    inputs = {}
    if content is not None:
        (tmp_path / "rec").mkdir()
        text = (
            json.dumps({"retrieval": {"model_uri": models["ranking"]}})
            if content == "WRONG"
            else content
        )
        (tmp_path / "rec" / R.RECORD_FILE).write_text(text)
        inputs = {"record": [artifact(simple_artifacts.File, tmp_path / "rec")]}
    outputs = _loader_outputs(tmp_path)
    X.LoaderExecutor().Do(inputs, outputs, {})
    status = outputs["retrieval_model"][0].get_string_custom_property(B.STATUS_PROPERTY)
    assert status.startswith("no baseline") and why in status
    assert B.family_of(outputs["retrieval_model"][0].uri) is None
