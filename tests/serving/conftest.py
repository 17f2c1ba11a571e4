"""Fixtures: toy SavedModel versions (exported once per session) and in-process servers."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving import server as server_lib
from tests.serving import toy_model

MODEL = "recommender"


@pytest.fixture(scope="session")
def model_template(tmp_path_factory) -> str:
    """A base path with toy versions 1 and 2 (copy them into a server's base path)."""
    base = str(tmp_path_factory.mktemp("toy_models"))
    for version in (1, 2):
        toy_model.export(toy_model.ToyRecommender(version), base, version)
    return base


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Running:
    """A started in-process server and stubs talking to it over loopback."""

    server: server_lib.ModelServer
    port: int
    rest_port: int
    base_path: str
    channel: grpc.Channel

    @property
    def predict_stub(self):
        return prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    @property
    def model_stub(self):
        return model_service_pb2_grpc.ModelServiceStub(self.channel)


def copy_version(template: str, base_path: str, version: int, as_version: int | None = None):
    """Copies a template version into place atomically (temp dir + rename)."""
    target = os.path.join(base_path, str(as_version or version))
    shutil.copytree(os.path.join(template, str(version)), target + ".tmp")
    os.rename(target + ".tmp", target)


@pytest.fixture
def serve(tmp_path, model_template):
    """start(versions=(1,), *flags, loader=None) -> Running; servers stop at teardown.

    A version is a template version (1 or 2) or (template version, directory name)."""
    started = []

    def start(versions=(1,), *flags, loader=None) -> Running:
        base = tmp_path / f"{MODEL}{len(started)}"
        base.mkdir()
        for version in versions:
            source, name = version if isinstance(version, tuple) else (version, None)
            copy_version(model_template, str(base), source, name)
        rest_port = free_port()
        argv = [
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--rest-port",
            str(rest_port),
            "--model-name",
            MODEL,
            "--model-base-path",
            str(base),
            "--poll-seconds",
            "0.2",
            *flags,
        ]
        server = server_lib.ModelServer(server_lib.parse_args(argv))
        if loader is not None:
            server.manager._loader = loader
        port = server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        return Running(server, port, rest_port, str(base), channel)

    yield start
    for server, channel in started:
        channel.close()
        server.stop()


def predict_request(inputs: dict, signature: str = "", model: str = MODEL, version=None):
    """A PredictRequest from name -> np.ndarray."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for name, array in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return request


def outputs_of(response) -> dict:
    """name -> np.ndarray of a PredictResponse."""
    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def assert_outputs_equal(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        value = np.asarray(value)
        if value.dtype == object:
            np.testing.assert_array_equal(got[key], value)
        else:
            np.testing.assert_allclose(got[key], value, rtol=1e-6)
