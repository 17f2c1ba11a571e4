"""The TF Serving config files parse with the official protos, and the Kubernetes manifests
agree with them (config files, model path, ports, probes, resources)."""

from __future__ import annotations

import glob
import os

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import protos

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "serving", "config")
MANIFESTS = sorted(glob.glob(os.path.join(REPO, "deploy", "k8s", "serving-*.yaml")))


def _model_config():
    with open(os.path.join(CONFIG, "models.config")) as f:
        return text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())


def test_models_config():
    models = _model_config().model_config_list.config
    assert [m.name for m in models] == ["recommender"]
    assert models[0].model_platform == "tensorflow"
    assert models[0].base_path.startswith("/models/")
    assert models[0].model_version_policy.latest.num_versions == 1


def test_batching_parameters():
    with open(os.path.join(CONFIG, "batching_parameters.txt")) as f:
        params = protos.parse_batching_parameters(f.read())
    options = protos.batcher_options(params)
    assert options["max_batch_size"] >= 8 and 0 < options["batch_timeout_micros"] <= 10_000
    assert params.num_batch_threads.value >= 1
    with pytest.raises(text_format.ParseError):
        protos.parse_batching_parameters("max_batch_size: 3")  # a wrapper, not a scalar


def _args(container) -> dict:
    return dict(a[2:].split("=", 1) for a in container["args"])


@pytest.mark.parametrize("path", MANIFESTS, ids=os.path.basename)
def test_manifest_is_consistent(path):
    docs = {d["kind"]: d for d in yaml.safe_load_all(open(path))}
    deployment, svc = docs["Deployment"], docs["Service"]
    pod = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    variant = pod["metadata"]["labels"]["variant"]
    image = container["image"]
    assert (variant, "tensorflow/serving:" in image, "scann" in image) in {
        ("portable", True, False),
        ("scann", False, True),
    }
    args = _args(container)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    config_dir = mounts["config"]["mountPath"]
    assert volumes["config"]["configMap"]["name"] == "recommender-serving-config"
    for flag in ("model_config_file", "batching_parameters_file"):
        directory, name = os.path.split(args[flag])
        assert directory == config_dir and os.path.isfile(os.path.join(CONFIG, name)), flag
    assert args["enable_batching"] == "true"
    model = _model_config().model_config_list.config[0]
    assert mounts["models"]["mountPath"] == model.base_path
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": int(args["port"]), "http": int(args["rest_api_port"])}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} == set(ports)
    for probe in ("readinessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] == ports["http"]
        assert get["path"].startswith(f"/v1/models/{model.name}")
    assert container["livenessProbe"]["tcpSocket"]["port"] == ports["grpc"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])


@pytest.mark.parametrize("path", MANIFESTS, ids=os.path.basename)
def test_a_network_policy_admits_only_clients_to_the_serving_ports(path):
    docs = {d["kind"]: d for d in yaml.safe_load_all(open(path))}
    pod = docs["Deployment"]["spec"]["template"]
    policy = docs["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"recommender-client": "true"}}}]
    [container] = pod["spec"]["containers"]
    ports = {p["containerPort"] for p in container["ports"]}
    assert {p["port"] for p in rule["ports"]} == ports


def test_both_variants_have_manifests():
    assert [os.path.basename(p) for p in MANIFESTS] == [
        "serving-portable.yaml",
        "serving-scann.yaml",
    ]
