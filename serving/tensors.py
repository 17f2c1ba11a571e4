"""Tensor conversion (TensorProto / JSON <-> numpy) and validation against a SignatureDef.

Every check names the offending input. Shapes are validated from the request's
header before any value is decoded, so a request claiming a huge shape never
allocates it.
"""

from __future__ import annotations

import base64
import dataclasses
import math

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

from schemas import features as F
from serving import errors


@dataclasses.dataclass(frozen=True)
class TensorSig:
    """dtype and shape of one signature input or output.

    Attributes:
        dtype: the tf.DType.
        shape: dims with None for unknown ones, e.g. (None, None) for [batch, L];
            None for an unknown rank.
    """

    dtype: tf.DType
    shape: tuple | None

    @classmethod
    def from_tensor_info(cls, info) -> TensorSig:
        """Builds it from a `TensorInfo` proto of a SignatureDef."""
        if info.tensor_shape.unknown_rank:
            return cls(tf.as_dtype(info.dtype), None)
        dims = tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim)
        return cls(tf.as_dtype(info.dtype), dims)

    def describe(self) -> str:
        """E.g. `string [-1, -1]`."""
        dims = "?" if self.shape is None else [-1 if d is None else d for d in self.shape]
        return f"{self.dtype.name} {dims}"


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-request limits; a request over any of them is INVALID_ARGUMENT.

    Attributes:
        max_batch: largest dimension 0 of any input.
        max_history: largest dimension 1 of the history inputs.
        max_elements: largest number of elements of any one input.
        history_inputs: names of the inputs `max_history` applies to.
    """

    max_batch: int = 1024
    max_history: int = 1000
    max_elements: int = 1 << 22
    history_inputs: tuple = (F.HISTORY_ITEM_IDS, F.HISTORY_GENRES)


def _dtype_name(enum: int) -> str:
    try:
        return tf.as_dtype(enum).name
    except TypeError:
        return f"<unknown dtype enum {enum}>"


def check_header(name: str, dtype_enum: int, dims: list, sig: TensorSig, limits: Limits) -> None:
    """Validates dtype and shape of input `name` before its values are decoded.

    Raises:
        ServingError: INVALID_ARGUMENT naming the input.
    """
    if dtype_enum != sig.dtype.as_datatype_enum:
        raise errors.invalid(
            f"input '{name}': expects dtype {sig.dtype.name}, got {_dtype_name(dtype_enum)}"
        )
    if any(d < 0 for d in dims):
        raise errors.invalid(f"input '{name}': negative dimension in shape {list(dims)}")
    if sig.shape is not None:
        if len(dims) != len(sig.shape):
            raise errors.invalid(
                f"input '{name}': expects shape {sig.describe()}, got shape {list(dims)}"
            )
        for want, got in zip(sig.shape, dims, strict=True):
            if want is not None and want != got:
                raise errors.invalid(
                    f"input '{name}': expects shape {sig.describe()}, got shape {list(dims)}"
                )
    if dims and dims[0] > limits.max_batch:
        raise errors.invalid(
            f"input '{name}': batch size {dims[0]} exceeds the limit {limits.max_batch}"
        )
    if name in limits.history_inputs and len(dims) > 1 and dims[1] > limits.max_history:
        raise errors.invalid(
            f"input '{name}': history length {dims[1]} exceeds the limit {limits.max_history}"
        )
    if math.prod(dims) > limits.max_elements:
        raise errors.invalid(
            f"input '{name}': {math.prod(dims)} elements exceed the limit {limits.max_elements}"
        )


def proto_to_array(
    name: str, proto: tensor_pb2.TensorProto, sig: TensorSig, limits: Limits
) -> np.ndarray:
    """Validates and decodes one TensorProto of a request.

    Raises:
        ServingError: INVALID_ARGUMENT naming the input.
    """
    if proto.tensor_shape.unknown_rank:
        raise errors.invalid(f"input '{name}': the tensor shape has an unknown rank")
    dims = [d.size for d in proto.tensor_shape.dim]
    check_header(name, proto.dtype, dims, sig, limits)
    try:
        return _decode(proto, dims)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the request's fault
        raise errors.invalid(f"input '{name}': malformed TensorProto: {exc}") from None


_STRING = tf.string.as_datatype_enum
_NUMPY = {
    d.as_datatype_enum: np.dtype(d.as_numpy_dtype)
    for d in (tf.float32, tf.float64, tf.int32, tf.int64, tf.int8, tf.int16, tf.uint8, tf.bool)
}


# The repeated field holding each numeric dtype's values when tensor_content is empty (the
# layout of clients that fill e.g. int64_val, as bench/serving_client.py does).
_VALUE_FIELDS = {
    tf.float32.as_datatype_enum: "float_val",
    tf.float64.as_datatype_enum: "double_val",
    tf.int64.as_datatype_enum: "int64_val",
    tf.int32.as_datatype_enum: "int_val",
    tf.int16.as_datatype_enum: "int_val",
    tf.int8.as_datatype_enum: "int_val",
    tf.uint8.as_datatype_enum: "int_val",
    tf.bool.as_datatype_enum: "bool_val",
}


def _decode(proto: tensor_pb2.TensorProto, dims: list) -> np.ndarray:
    """tf.make_ndarray, with direct paths for the common layouts (~10x faster)."""
    count = math.prod(dims)
    if proto.dtype == _STRING and len(proto.string_val) == count:
        return np.array(list(proto.string_val), dtype=object).reshape(dims)
    dtype = _NUMPY.get(proto.dtype)
    field = _VALUE_FIELDS.get(proto.dtype)
    if field and count and not proto.tensor_content:
        values = getattr(proto, field)
        if len(values) == count:  # else TF's fill rule (last value repeated): make_ndarray
            return np.array(list(values), dtype=dtype).reshape(dims)
    if (
        dtype is not None
        and proto.tensor_content
        and len(proto.tensor_content) == count * dtype.itemsize
    ):
        return np.frombuffer(proto.tensor_content, dtype).reshape(dims)
    return tf.make_ndarray(proto)


def array_to_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Encodes one output (strings stay bytes), as tf.make_tensor_proto but faster."""
    if array.dtype == object:
        values = array.ravel().tolist()
        if not all(isinstance(v, bytes) for v in values):
            return tf.make_tensor_proto(array)
        proto = tensor_pb2.TensorProto(dtype=_STRING, string_val=values)
    else:
        dtype = tf.as_dtype(array.dtype)
        if dtype.as_datatype_enum not in _NUMPY:
            return tf.make_tensor_proto(array)
        proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
    proto.tensor_shape.dim.extend(
        tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape
    )
    return proto


def batch_size(arrays: dict, sigs: dict) -> int | None:
    """The common dimension 0 of batch-major inputs (None if some input is not batch-major).

    Args:
        arrays: input name -> np.ndarray.
        sigs: input name -> TensorSig of the signature.

    Raises:
        ServingError: INVALID_ARGUMENT naming the first input whose batch size differs.
    """
    if not all(s.shape and s.shape[0] is None for s in sigs.values()):
        return None
    first, size = None, None
    for name in sorted(arrays):
        rows = arrays[name].shape[0]
        if size is None:
            first, size = name, rows
        elif rows != size:
            raise errors.invalid(
                f"input '{name}': batch size {rows} differs from input '{first}' ({size})"
            )
    return size


def _to_bytes(name: str, value):
    if isinstance(value, list):
        return [_to_bytes(name, v) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise errors.invalid(f"input '{name}': invalid base64 string") from None
    raise errors.invalid(f"input '{name}': expects strings, got {type(value).__name__}")


_KINDS = {"i": "iu", "u": "iu", "f": "iuf", "b": "b", "c": "iufc"}


def _ints(value):
    """The Python ints of a nested JSON list (bools excluded)."""
    if isinstance(value, list):
        for item in value:
            yield from _ints(item)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield value


def _check_integer_range(name: str, value, want: np.dtype) -> None:
    """INVALID_ARGUMENT when a JSON integer does not fit the input's integer dtype (numpy
    wraps 2^63 to -2^63 silently, or turns a list holding it into floats)."""
    if want.kind not in "iu":
        return
    info = np.iinfo(want)
    bad = next((v for v in _ints(value) if not info.min <= v <= info.max), None)
    if bad is not None:
        raise errors.invalid(
            f"input '{name}': value {errors.clip(bad)} is out of range for {want.name} "
            f"[{info.min}, {info.max}]"
        )


def json_to_array(name: str, value, sig: TensorSig, limits: Limits) -> np.ndarray:
    """Converts one JSON input value (nested lists, TF Serving's REST format) to numpy.

    Strings may be given as `{"b64": "..."}` for arbitrary bytes.

    Raises:
        ServingError: INVALID_ARGUMENT naming the input.
    """
    if sig.dtype == tf.string:
        array = np.array(_to_bytes(name, value), dtype=object)
        if any(not isinstance(v, bytes) for v in array.flat):
            raise errors.invalid(f"input '{name}': ragged or nested lists")
    else:
        try:
            array = np.array(value)
        except ValueError:
            raise errors.invalid(f"input '{name}': ragged or nested lists") from None
        want = np.dtype(sig.dtype.as_numpy_dtype)
        _check_integer_range(name, value, want)
        if array.size and array.dtype.kind not in _KINDS.get(want.kind, want.kind):
            raise errors.invalid(
                f"input '{name}': expects {sig.dtype.name} values, got {array.dtype.name}"
            )
        array = array.astype(want)
    check_header(name, sig.dtype.as_datatype_enum, list(array.shape), sig, limits)
    return array


def array_to_json(array: np.ndarray):
    """Nested lists for JSON; bytes become text (or `{"b64": ...}` when not UTF-8)."""
    if array.dtype != object:
        return array.tolist()

    def text(value: bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}

    return np.vectorize(text, otypes=[object])(array).tolist() if array.size else array.tolist()
