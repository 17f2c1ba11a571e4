"""Predict on every signature, metadata, status and REST, over loopback with the official stubs."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    regression_pb2,
)

from schemas import features as F
from serving.servable import Servable
from tests.serving import toy_model
from tests.serving.conftest import MODEL, assert_outputs_equal, outputs_of, predict_request

State = get_model_status_pb2.ModelVersionStatus.State


def _examples(batch: dict) -> np.ndarray:
    rows = []
    for i in range(len(batch[F.USER_ID])):
        feature = {
            F.USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"u7"])),
            F.AGE: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(batch[F.AGE][i])])),
            F.HISTORY_ITEM_IDS: tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[b"i3", b"i9", b"i10"][: i + 1])
            ),
        }
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        rows.append(example.SerializeToString())
    return np.array(rows, dtype=object)


@pytest.fixture(scope="module")
def in_process(model_template):
    return tf.saved_model.load(os.path.join(model_template, "1")).signatures


def test_every_signature_equals_in_process(serve, in_process):
    running = serve()
    query = toy_model.query_batch(rows=3, length=4)
    cases = {
        "serving_default": query,
        "retrieve": query,
        "rank": {**query, F.ITEM_ID: np.array([["i1", "i2"], ["i3", "x"], ["", "i4"]], object)},
        "serve_tf_examples": {toy_model.EXAMPLES: _examples(query)},
    }
    for signature, inputs in cases.items():
        response = running.predict_stub.Predict(predict_request(inputs, signature))
        want = {k: v.numpy() for k, v in in_process[signature](**inputs).items()}
        assert_outputs_equal(outputs_of(response), want)
        assert response.model_spec.name == MODEL
        assert response.model_spec.version.value == 1
        assert response.model_spec.signature_name == signature
        assert running.server.manager._current.signatures[signature].flat  # the fast path


def test_empty_signature_is_serving_default_and_output_filter(serve, in_process):
    running = serve()
    query = toy_model.query_batch()
    request = predict_request(query)
    request.output_filter.append("item_ids")
    response = running.predict_stub.Predict(request)
    assert response.model_spec.signature_name == "serving_default"
    assert list(response.outputs) == ["item_ids"]
    want = in_process["serving_default"](**query)["item_ids"].numpy()
    np.testing.assert_array_equal(outputs_of(response)["item_ids"], want)
    request.output_filter.append("nope")
    with pytest.raises(grpc.RpcError) as err:
        running.predict_stub.Predict(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "nope" in err.value.details()


def test_versions_and_unknown_models(serve):
    running = serve((1, 2), "--version-labels", "stable=2,old=1")
    query = toy_model.query_batch()
    stub = running.predict_stub
    assert stub.Predict(predict_request(query)).model_spec.version.value == 2  # latest
    assert stub.Predict(predict_request(query, version=2)).model_spec.version.value == 2
    labelled = predict_request(query)
    labelled.model_spec.version_label = "stable"
    assert stub.Predict(labelled).model_spec.version.value == 2
    failures = {
        "version 1 is not served (latest policy)": (predict_request(query, version=1), "NOT_FOUND"),
        "unknown model": (predict_request(query, model="nope"), "NOT_FOUND"),
        "unknown signature": (predict_request(query, "nope"), "INVALID_ARGUMENT"),
        "label of an unloaded version": (labelled, "NOT_FOUND"),
    }
    failures["label of an unloaded version"][0].model_spec.version_label = "old"
    for what, (request, code) in failures.items():
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(request)
        assert err.value.code().name == code, what
    labelled.model_spec.version_label = "nope"
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(labelled)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_metadata_is_the_signature_def_map(serve, model_template):
    running = serve()
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = running.predict_stub.GetModelMetadata(request)
    assert response.model_spec.version.value == 1
    defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(defs)
    assert {"serving_default", "retrieve", "rank", "serve_tf_examples"} <= set(defs.signature_def)
    sig = defs.signature_def["serving_default"]
    assert sig.inputs[F.HISTORY_ITEM_IDS].dtype == tf.string.as_datatype_enum
    assert [d.size for d in sig.inputs[F.HISTORY_ITEM_IDS].tensor_shape.dim] == [-1, -1]
    assert set(sig.outputs) == {"item_ids", "scores", "retrieval_scores"}
    assert set(defs.signature_def["rank"].inputs) == set(toy_model.RANK_SPEC)
    del request.metadata_field[:]
    with pytest.raises(grpc.RpcError) as err:
        running.predict_stub.GetModelMetadata(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_status_and_unimplemented(serve):
    running = serve((2,))
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    status = running.model_stub.GetModelStatus(request)
    assert [(s.version, s.state) for s in status.model_version_status] == [(2, State.AVAILABLE)]
    assert status.model_version_status[0].status.error_code == 0
    request.model_spec.version.value = 5
    with pytest.raises(grpc.RpcError) as err:
        running.model_stub.GetModelStatus(request)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as err:
        running.model_stub.GetModelStatus(request)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    stub = running.predict_stub
    for method, message in [
        (stub.Classify, classification_pb2.ClassificationRequest()),
        (stub.Regress, regression_pb2.RegressionRequest()),
        (stub.MultiInference, inference_pb2.MultiInferenceRequest()),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            method(message)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _http(port: int, path: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_rest_api(serve, in_process):
    running = serve()
    query = toy_model.query_batch(rows=2)
    want = {k: v.numpy() for k, v in in_process["serving_default"](**query).items()}
    columns = {
        k: [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
        if v.ndim == 1
        else v.tolist()
        for k, v in query.items()
    }
    status, body = _http(running.rest_port, f"/v1/models/{MODEL}:predict", {"inputs": columns})
    assert status == 200
    np.testing.assert_allclose(body["outputs"]["scores"], want["scores"], rtol=1e-6)
    assert body["outputs"]["item_ids"] == [[i.decode() for i in r] for r in want["item_ids"]]
    rows = [{k: v[i] for k, v in columns.items()} for i in range(2)]
    status, body = _http(
        running.rest_port,
        f"/v1/models/{MODEL}/versions/1:predict",
        {"instances": rows, "signature_name": "retrieve"},
    )
    assert status == 200 and len(body["predictions"]) == 2
    assert set(body["predictions"][0]) == {"item_ids", "retrieval_scores"}
    status, body = _http(running.rest_port, f"/v1/models/{MODEL}")
    assert status == 200
    assert body["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = _http(running.rest_port, f"/v1/models/{MODEL}/metadata")
    assert status == 200 and "rank" in body["metadata"]["signature_def"]["signatureDef"]
    bad = dict(columns, age=["x", "y"])
    status, body = _http(running.rest_port, f"/v1/models/{MODEL}:predict", {"inputs": bad})
    assert status == 400 and "age" in body["error"]
    status, body = _http(running.rest_port, "/v1/models/nope:predict", {"inputs": columns})
    assert status == 404


def test_model_failures_keep_the_server_serving(serve):
    def loader(path, version):
        servable = Servable(path, version)

        def explode(inputs):
            raise RuntimeError("boom in the model")

        servable.signatures["retrieve"].call = explode
        return servable

    running = serve((1,), loader=loader)
    stub = running.predict_stub
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(predict_request(toy_model.query_batch(), "retrieve"))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "RuntimeError: boom in the model" in err.value.details()
    # A TF error inside the graph keeps its code (unparsable tf.Examples: INVALID_ARGUMENT).
    garbage = {toy_model.EXAMPLES: np.array([b"\xff\x00 not an example"], dtype=object)}
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(predict_request(garbage, "serve_tf_examples"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Could not parse example input" in err.value.details()
    response = stub.Predict(predict_request(toy_model.query_batch()))
    assert outputs_of(response)["item_ids"].shape == (2, 5)
