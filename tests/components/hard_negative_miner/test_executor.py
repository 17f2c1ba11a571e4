"""HardNegativeMiner's executor without blessed models (the first run): an empty file."""

import json
import os

import pytest
from tfx import types
from tfx.types import standard_artifacts

from components.hard_negative_miner import executor, mining
from components.hard_negative_miner.component import HardNegativeMiner, HardNegatives


def _artifact(cls, uri):
    artifact = cls()
    artifact.uri = str(uri)
    return artifact


def _saved_model(uri, signatures):
    """A model directory whose Format-Serving/saved_model.pb declares these signatures."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    for name in signatures:
        proto.meta_graphs.add().signature_def[name].method_name = "predict"
    os.makedirs(os.path.join(uri, "Format-Serving"))
    with open(os.path.join(uri, "Format-Serving", "saved_model.pb"), "wb") as f:
        f.write(proto.SerializeToString())
    return uri


@pytest.mark.parametrize(
    "present, status",
    [
        ((), "no blessed retrieval and ranking model yet: empty file"),
        (("retrieval_model",), "no blessed ranking model yet: empty file"),
        # Both given, but the "ranking" one is a retrieval model: wrong kind, no baseline.
        (("retrieval_model", "ranking_model"), "no blessed ranking model yet: empty file"),
    ],
)
def test_without_both_blessed_models_the_file_is_empty(tmp_path, present, status):
    out = _artifact(HardNegatives, tmp_path)
    inputs = {
        "examples": [_artifact(standard_artifacts.Examples, tmp_path / "absent")],
        "catalog": [_artifact(standard_artifacts.Examples, tmp_path / "absent")],
        "retrieval_model": [],
        "ranking_model": [],
    }
    model = _saved_model(str(tmp_path / "model"), ("query_embedding", "candidate_embedding"))
    for key in present:
        inputs[key] = [_artifact(standard_artifacts.Model, model)]
    executor.Executor().Do(inputs, {"hard_negatives": [out]}, {"top_n": 20, "top_k": 5})
    assert open(tmp_path / mining.TSV_FILE).read() == ""
    report = json.load(open(tmp_path / mining.REPORT_FILE))
    assert report["status"] == status and report["users_mined"] == 0
    assert report["top_n"] == 20 and report["top_k"] == 5 and report["max_per_user"] == 50
    assert out.get_string_custom_property("status") == status
    assert out.get_int_custom_property("negatives") == 0
    assert sorted(os.listdir(tmp_path)) == sorted(["model", mining.REPORT_FILE, mining.TSV_FILE])


def test_bad_properties_name_the_field():
    with pytest.raises(ValueError, match="HardNegativeMiner.top_k must be < top_n"):
        executor.config_from_properties({"top_n": 5, "top_k": 5})


def test_component_wiring():
    miner = HardNegativeMiner(
        examples=types.Channel(type=standard_artifacts.Examples),
        catalog=types.Channel(type=standard_artifacts.Examples),
        retrieval_model=types.Channel(type=standard_artifacts.Model),
        config=mining.MiningConfig(top_n=40, top_k=4, max_per_user=7),
    )
    props = miner.exec_properties
    assert (props["top_n"], props["top_k"], props["max_per_user"]) == (40, 4, 7)
    assert props["split"] == "train"
    assert set(miner.inputs) == {"examples", "catalog", "retrieval_model"}
    assert miner.outputs["hard_negatives"].type == HardNegatives
