"""TLS from TF Serving's `--ssl_config_file`: a text `SSLConfig` proto
(tensorflow_serving/config/ssl_config.proto) holding PEM text, not file names:

    server_key: "-----BEGIN PRIVATE KEY-----\\n..."
    server_cert: "-----BEGIN CERTIFICATE-----\\n..."
    custom_ca: "-----BEGIN CERTIFICATE-----\\n..."   # optional: CA of client certificates
    client_verify: true                                # optional: require a client cert

The same configuration secures gRPC (grpc.ssl_server_credentials) and REST (an
ssl.SSLContext for tornado).
"""

from __future__ import annotations

import functools
import os
import ssl
import tempfile

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_FIELD = descriptor_pb2.FieldDescriptorProto
_SSL_FIELDS = (
    ("server_key", 1, _FIELD.TYPE_STRING),
    ("server_cert", 2, _FIELD.TYPE_STRING),
    ("custom_ca", 3, _FIELD.TYPE_STRING),
    ("client_verify", 4, _FIELD.TYPE_BOOL),
)


@functools.cache
def ssl_config_class():
    """The `tensorflow.serving.SSLConfig` message class (not in tensorflow-serving-api)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/ssl_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
    )
    message = proto.message_type.add(name="SSLConfig")
    for name, number, kind in _SSL_FIELDS:
        message.field.add(name=name, number=number, label=_FIELD.LABEL_OPTIONAL, type=kind)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.SSLConfig")
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def read_ssl_config(path: str):
    """Parses and checks an SSLConfig text proto file.

    Raises:
        ValueError: unreadable, unparsable, or without server_key / server_cert, naming
            the file and the field.
    """
    try:
        with open(path) as f:
            config = text_format.Parse(f.read(), ssl_config_class()())
    except (OSError, text_format.ParseError) as exc:
        raise ValueError(f"--ssl-config-file {path}: {exc}") from None
    for field in ("server_key", "server_cert"):
        if "-----BEGIN" not in getattr(config, field):
            raise ValueError(f"--ssl-config-file {path}: {field} must hold PEM text")
    if config.client_verify and not config.custom_ca:
        raise ValueError(f"--ssl-config-file {path}: client_verify needs custom_ca")
    return config


def grpc_credentials(config) -> grpc.ServerCredentials:
    """Server credentials for grpc.Server.add_secure_port."""
    return grpc.ssl_server_credentials(
        [(config.server_key.encode(), config.server_cert.encode())],
        root_certificates=config.custom_ca.encode() or None,
        require_client_auth=config.client_verify,
    )


def ssl_context(config) -> ssl.SSLContext:
    """A server-side SSLContext for the REST server."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain reads files only: the PEM text goes through a private temporary file.
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(config.server_cert.rstrip() + "\n" + config.server_key.rstrip() + "\n")
        context.load_cert_chain(path)
    finally:
        os.remove(path)
    if config.custom_ca:
        context.load_verify_locations(cadata=config.custom_ca)
        context.verify_mode = ssl.CERT_REQUIRED if config.client_verify else ssl.CERT_OPTIONAL
    return context
