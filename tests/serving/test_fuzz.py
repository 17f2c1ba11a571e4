"""A fuzz of malformed requests: each gets the right status code, naming the input, and
the server still answers a valid request afterwards."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request

import grpc
import numpy as np
import tensorflow as tf

from schemas import features as F
from tests.serving import toy_model
from tests.serving.conftest import MODEL, outputs_of, predict_request

INVALID, NOT_FOUND, OK = "INVALID_ARGUMENT", "NOT_FOUND", "OK"
DTYPES = [tf.float32, tf.float64, tf.int32, tf.int64, tf.string, tf.bool, tf.uint8]
PREDICT = "/tensorflow.serving.PredictionService/Predict"


def _random_array(rng: random.Random, dtype: tf.DType, shape: tuple) -> np.ndarray:
    if dtype == tf.string:
        values = [bytes(rng.randrange(256) for _ in range(3)) for _ in range(int(np.prod(shape)))]
        return np.array(values, dtype=object).reshape(shape)
    return np.ones(shape, dtype=dtype.as_numpy_dtype)


def _case(rng: random.Random):
    """One malformed (or garbage-but-valid) request: (request, code, input it must name)."""
    query = toy_model.query_batch(
        rows=rng.randint(1, 4), length=rng.randint(1, 5), seed=rng.randrange(10**6)
    )
    name = rng.choice(sorted(query))
    kind = rng.randrange(13)
    request = predict_request(query, rng.choice(["", "serving_default", "retrieve"]))
    proto = request.inputs[name]
    if kind == 0:  # missing input
        del request.inputs[name]
        return request, INVALID, name
    if kind == 1:  # extra input
        request.inputs["bogus"].CopyFrom(tf.make_tensor_proto([1]))
        return request, INVALID, "bogus"
    if kind == 2:  # wrong dtype
        want = tf.as_dtype(proto.dtype)
        dtype = rng.choice([d for d in DTYPES if d != want])
        proto.CopyFrom(tf.make_tensor_proto(_random_array(rng, dtype, query[name].shape)))
        return request, INVALID, name
    if kind == 3:  # wrong rank
        array = query[name]
        array = array[..., None] if rng.random() < 0.5 or array.ndim == 1 else array[:, 0]
        proto.CopyFrom(tf.make_tensor_proto(array))
        return request, INVALID, name
    if kind == 4:  # one input with another batch size
        array = np.concatenate([query[name], query[name][:1]])
        proto.CopyFrom(tf.make_tensor_proto(array))
        return request, INVALID, None
    if kind == 5:  # huge batch or history, claimed by the header only
        dims = proto.tensor_shape.dim
        dims[rng.randrange(len(dims))].size = rng.choice([5000, 10**6, 2**40])
        return request, INVALID, name
    if kind == 6:  # garbage bytes in every string: valid, the ids fall into OOV
        for key, array in query.items():
            if array.dtype == object:
                request.inputs[key].CopyFrom(
                    tf.make_tensor_proto(_random_array(rng, tf.string, array.shape))
                )
        return request, OK, None
    if kind == 7:  # values that do not fill the shape
        proto.tensor_shape.dim[0].size += 3
        if proto.dtype != tf.string.as_datatype_enum:
            proto.tensor_content = proto.tensor_content[:-1] or b"\x00"
        return request, INVALID, name
    if kind == 8:  # negative dims, unknown rank, unknown dtype enum
        choice = rng.randrange(3)
        if choice == 0:
            proto.tensor_shape.dim[0].size = -2
        elif choice == 1:
            proto.tensor_shape.unknown_rank = True
        else:
            proto.dtype = rng.choice([30, 77, 1234])
        return request, INVALID, name
    if kind == 9:  # unknown model or version
        if rng.random() < 0.5:
            request.model_spec.name = rng.choice(["nope", "", MODEL + "x"])
        else:
            request.model_spec.version.value = rng.choice([0, 2, 99])
        return request, NOT_FOUND, None
    if kind == 10:  # unknown signature, unknown label
        if rng.random() < 0.5:
            request.model_spec.signature_name = rng.choice(["nope", "rank ", "__saved_model_x"])
        else:
            request.model_spec.version_label = "canary"
        return request, INVALID, None
    if kind == 11:  # garbage tf.Examples: parsed (OK) or rejected by the model, never INTERNAL
        examples = _random_array(rng, tf.string, (rng.randint(1, 3),))
        request = predict_request({toy_model.EXAMPLES: examples}, "serve_tf_examples")
        return request, (OK, INVALID), None
    request.ClearField("model_spec")
    return request, INVALID, None


def test_fuzz_malformed_requests(serve):
    running = serve((1,), "--max-batch", "64", "--max-history", "200")
    stub = running.predict_stub
    rng = random.Random(1234)
    counts = {}
    for _ in range(600):
        request, code, name = _case(rng)
        try:
            stub.Predict(request, timeout=30)
            got, details = OK, ""
        except grpc.RpcError as err:
            got, details = err.code().name, err.details()
        assert got in (code if isinstance(code, tuple) else (code,)), (code, details, name)
        if name is not None and code != OK:
            assert f"'{name}'" in details, details
        counts[got] = counts.get(got, 0) + 1
    # Raw garbage that is not a PredictRequest at all.
    raw = running.channel.unary_unary(PREDICT)  # bytes in, bytes out
    for _ in range(30):
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        try:
            raw(garbage, timeout=30)
            raise AssertionError("garbage was answered OK")
        except grpc.RpcError as err:
            assert err.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
    assert counts[OK] > 10 and counts[INVALID] > 300 and counts[NOT_FOUND] > 20
    response = stub.Predict(predict_request(toy_model.query_batch()))
    assert outputs_of(response)["item_ids"].shape == (2, 5)


def test_fuzz_rest(serve):
    running = serve((1,))
    url = f"http://127.0.0.1:{running.rest_port}/v1/models/{MODEL}:predict"
    bodies = [
        b"{",
        b"[]",
        b'{"instances": 3}',
        b'{"inputs": {"user_id": [1]}}',
        b'{"instances": [{"user_id": "a"}, {"age": 3}]}',
        b'{"inputs": [], "instances": []}',
        json.dumps({"inputs": {F.USER_ID: [[["a"]]]}}).encode(),
        b"\xff\xfe",
    ]
    for body in bodies:
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30)
            raise AssertionError(f"{body!r} was answered OK")
        except urllib.error.HTTPError as err:
            assert err.code == 400, (body, err.read())
    response = running.predict_stub.Predict(predict_request(toy_model.query_batch()))
    assert response.model_spec.version.value == 1
