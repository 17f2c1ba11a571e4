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


class Case:
    """One request of the fuzz: a valid random query of 1-4 rows that a mutator breaks.

    Each mutator changes `request` and returns (expected code or codes, input the error
    message must name or None).
    """

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.query = toy_model.query_batch(
            rows=rng.randint(1, 4), length=rng.randint(1, 5), seed=rng.randrange(10**6)
        )
        self.name = rng.choice(sorted(self.query))
        self.request = predict_request(self.query, rng.choice(["", "serving_default", "retrieve"]))
        self.proto = self.request.inputs[self.name]

    def missing_input(self):
        del self.request.inputs[self.name]
        return INVALID, self.name

    def extra_input(self):
        self.request.inputs["bogus"].CopyFrom(tf.make_tensor_proto([1]))
        return INVALID, "bogus"

    def wrong_dtype(self):
        want = tf.as_dtype(self.proto.dtype)
        dtype = self.rng.choice([d for d in DTYPES if d != want])
        array = _random_array(self.rng, dtype, self.query[self.name].shape)
        self.proto.CopyFrom(tf.make_tensor_proto(array))
        return INVALID, self.name

    def wrong_rank(self):
        array = self.query[self.name]
        array = array[..., None] if self.rng.random() < 0.5 or array.ndim == 1 else array[:, 0]
        self.proto.CopyFrom(tf.make_tensor_proto(array))
        return INVALID, self.name

    def other_batch_size(self):
        array = self.query[self.name]
        self.proto.CopyFrom(tf.make_tensor_proto(np.concatenate([array, array[:1]])))
        return INVALID, None

    def huge_claimed_shape(self):  # huge batch or history, claimed by the header only
        dims = self.proto.tensor_shape.dim
        dims[self.rng.randrange(len(dims))].size = self.rng.choice([5000, 10**6, 2**40])
        return INVALID, self.name

    def garbage_strings(self):  # valid: the ids fall into OOV buckets
        for key, array in self.query.items():
            if array.dtype == object:
                garbage = _random_array(self.rng, tf.string, array.shape)
                self.request.inputs[key].CopyFrom(tf.make_tensor_proto(garbage))
        return OK, None

    def values_do_not_fill_the_shape(self):
        self.proto.tensor_shape.dim[0].size += 3
        if self.proto.dtype != tf.string.as_datatype_enum:
            self.proto.tensor_content = self.proto.tensor_content[:-1] or b"\x00"
        return INVALID, self.name

    def bad_header(self):  # negative dims, unknown rank, unknown dtype enum
        choice = self.rng.randrange(3)
        if choice == 0:
            self.proto.tensor_shape.dim[0].size = -2
        elif choice == 1:
            self.proto.tensor_shape.unknown_rank = True
        else:
            self.proto.dtype = self.rng.choice([30, 77, 1234])
        return INVALID, self.name

    def unknown_model_or_version(self):
        if self.rng.random() < 0.5:
            self.request.model_spec.name = self.rng.choice(["nope", "", MODEL + "x"])
        else:
            self.request.model_spec.version.value = self.rng.choice([0, 2, 99])
        return NOT_FOUND, None

    def unknown_signature_or_label(self):
        if self.rng.random() < 0.5:
            names = ["nope", "rank ", "__saved_model_x"]
            self.request.model_spec.signature_name = self.rng.choice(names)
        else:
            self.request.model_spec.version_label = "canary"
        return INVALID, None

    def garbage_examples(self):  # parsed (OK) or rejected by the model, never INTERNAL
        examples = _random_array(self.rng, tf.string, (self.rng.randint(1, 3),))
        self.request = predict_request({toy_model.EXAMPLES: examples}, "serve_tf_examples")
        return (OK, INVALID), None

    def no_model_spec(self):
        self.request.ClearField("model_spec")
        return INVALID, None

    MUTATORS = (missing_input, extra_input, wrong_dtype, wrong_rank, other_batch_size,
                huge_claimed_shape, garbage_strings, values_do_not_fill_the_shape, bad_header,
                unknown_model_or_version, unknown_signature_or_label, garbage_examples,
                no_model_spec)  # fmt: skip


def _case(rng: random.Random):
    """(request, expected code(s), input the message must name)."""
    case = Case(rng)
    code, name = rng.choice(Case.MUTATORS)(case)
    return case.request, code, name


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
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT  # not INTERNAL (issue 20)
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
