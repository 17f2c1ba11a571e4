"""TF Serving's `BatchingParameters` message (tensorflow_serving/servables/tensorflow/
session_bundle_config.proto), which the tensorflow-serving-api wheel does not ship.

It is rebuilt here from its field numbers (stable since TF Serving 1.x) in a private
descriptor pool, so `--batching_parameters_file` text protos parse exactly as
`tensorflow_model_server` parses them.
"""

from __future__ import annotations

import functools

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)

_FIELD = descriptor_pb2.FieldDescriptorProto
# name, number, label, type, wrapper message type
_BATCHING_FIELDS = (
    ("max_batch_size", 1, _FIELD.LABEL_OPTIONAL, _FIELD.TYPE_MESSAGE, "Int64Value"),
    ("batch_timeout_micros", 2, _FIELD.LABEL_OPTIONAL, _FIELD.TYPE_MESSAGE, "Int64Value"),
    ("max_enqueued_batches", 3, _FIELD.LABEL_OPTIONAL, _FIELD.TYPE_MESSAGE, "Int64Value"),
    ("num_batch_threads", 4, _FIELD.LABEL_OPTIONAL, _FIELD.TYPE_MESSAGE, "Int64Value"),
    ("thread_pool_name", 5, _FIELD.LABEL_OPTIONAL, _FIELD.TYPE_MESSAGE, "StringValue"),
    ("allowed_batch_sizes", 6, _FIELD.LABEL_REPEATED, _FIELD.TYPE_INT64, None),
    ("pad_variable_length_inputs", 7, _FIELD.LABEL_OPTIONAL, _FIELD.TYPE_BOOL, None),
)


@functools.cache
def batching_parameters_class():
    """The `tensorflow.serving.BatchingParameters` message class."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = proto.message_type.add(name="BatchingParameters")
    for name, number, label, kind, wrapper in _BATCHING_FIELDS:
        field = message.field.add(name=name, number=number, label=label, type=kind)
        if wrapper:
            field.type_name = f".google.protobuf.{wrapper}"
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def parse_batching_parameters(text: str):
    """Parses a batching parameters text proto; raises text_format.ParseError when invalid."""
    return text_format.Parse(text, batching_parameters_class()())


def batcher_options(params) -> dict:
    """Batcher keyword arguments from a BatchingParameters (TF Serving's defaults if unset)."""

    def get(field: str, default: int) -> int:
        return getattr(params, field).value if params.HasField(field) else default

    return {
        "max_batch_size": get("max_batch_size", 1000),
        "batch_timeout_micros": get("batch_timeout_micros", 0),
        "num_batch_threads": get("num_batch_threads", 4),
        "max_enqueued_batches": get("max_enqueued_batches", 10),
    }
