"""TLS on gRPC and REST from TF Serving's --ssl_config_file, with certificates made here."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import urllib.error
import urllib.request

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import tls
from tests.serving import toy_model
from tests.serving.conftest import MODEL, predict_request


def _cert(subject: str, key, issuer=None, issuer_key=None, ca=False, server=False):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(obj) -> str:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def pki() -> dict:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM text."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test CA", ca_key, ca=True)
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    server = _cert("127.0.0.1", server_key, ca, ca_key, server=True)
    client = _cert("client", client_key, ca, ca_key)
    return {
        "ca": _pem(ca),
        "server_key": _pem(server_key),
        "server_cert": _pem(server),
        "client_key": _pem(client_key),
        "client_cert": _pem(client),
    }


def _config_file(tmp_path, pki, client_verify: bool) -> str:
    path = tmp_path / "ssl_config.txt"
    lines = [
        f"server_key: {json.dumps(pki['server_key'])}",
        f"server_cert: {json.dumps(pki['server_cert'])}",
    ]
    if client_verify:
        lines += [f"custom_ca: {json.dumps(pki['ca'])}", "client_verify: true"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _https(port: int, context: ssl.SSLContext):
    url = f"https://127.0.0.1:{port}/v1/models/{MODEL}"
    with urllib.request.urlopen(url, timeout=30, context=context) as response:
        return response.status, json.loads(response.read())


def test_tls_on_grpc_and_rest(serve, tmp_path, pki):
    running = serve((1,), "--ssl-config-file", _config_file(tmp_path, pki, False))
    credentials = grpc.ssl_channel_credentials(root_certificates=pki["ca"].encode())
    with grpc.secure_channel(f"127.0.0.1:{running.port}", credentials) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(predict_request(toy_model.query_batch()), timeout=30)
        assert response.model_spec.version.value == 1
    with pytest.raises(grpc.RpcError):  # plaintext is refused
        running.predict_stub.Predict(predict_request(toy_model.query_batch()), timeout=10)
    context = ssl.create_default_context(cadata=pki["ca"])
    status, body = _https(running.rest_port, context)
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    with pytest.raises(urllib.error.URLError):  # a client that does not trust the CA
        _https(running.rest_port, ssl.create_default_context())
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP
        urllib.request.urlopen(
            f"http://127.0.0.1:{running.rest_port}/v1/models/{MODEL}", timeout=10
        )


def test_client_verify_requires_a_client_certificate(serve, tmp_path, pki):
    running = serve((1,), "--ssl-config-file", _config_file(tmp_path, pki, True))
    root = pki["ca"].encode()
    anonymous = grpc.ssl_channel_credentials(root_certificates=root)
    with grpc.secure_channel(f"127.0.0.1:{running.port}", anonymous) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError):
            stub.Predict(predict_request(toy_model.query_batch()), timeout=10)
    mutual = grpc.ssl_channel_credentials(
        root, pki["client_key"].encode(), pki["client_cert"].encode()
    )
    with grpc.secure_channel(f"127.0.0.1:{running.port}", mutual) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert stub.Predict(predict_request(toy_model.query_batch()), timeout=30).outputs
    context = ssl.create_default_context(cadata=pki["ca"])
    with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
        _https(running.rest_port, context)
    cert = tmp_path / "client.pem"
    cert.write_text(pki["client_cert"] + pki["client_key"])
    context.load_cert_chain(str(cert))
    assert _https(running.rest_port, context)[0] == 200


def test_bad_ssl_config_names_the_problem(tmp_path, pki):
    path = tmp_path / "bad.txt"
    path.write_text('server_key: "not pem"\nserver_cert: "x"\n')
    with pytest.raises(ValueError, match="server_key must hold PEM text"):
        tls.read_ssl_config(str(path))
    path.write_text("nonsense {")
    with pytest.raises(ValueError, match="bad.txt"):
        tls.read_ssl_config(str(path))
    good = _config_file(tmp_path, pki, False)
    path.write_text(open(good).read() + "client_verify: true\n")
    with pytest.raises(ValueError, match="client_verify needs custom_ca"):
        tls.read_ssl_config(str(path))


def test_the_query_client_speaks_tls(serve, tmp_path, pki, capsys):
    from serving import client

    running = serve((1,), "--ssl-config-file", _config_file(tmp_path, pki, True))
    files = {}
    for name in ("ca", "client_cert", "client_key"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text(pki[name])
    argv = ["query", "--host", "127.0.0.1", "--port", str(running.port), "--model-name", MODEL,
            "--model-base-path", running.base_path, "--user", "u1", "--history", "i1", "--json",
            "--ssl-root-cert", str(files["ca"]), "--ssl-client-cert", str(files["client_cert"]),
            "--ssl-client-key", str(files["client_key"])]  # fmt: skip
    assert client.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
