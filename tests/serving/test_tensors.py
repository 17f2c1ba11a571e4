"""Tensor validation and conversion, on hand-written 2-3 element tensors."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf

from schemas import features as F
from serving import errors, tensors

LIMITS = tensors.Limits(max_batch=4, max_history=3, max_elements=100)
STR_BL = tensors.TensorSig(tf.string, (None, None))
INT_B = tensors.TensorSig(tf.int64, (None,))


def _invalid(fn, *args) -> str:
    with pytest.raises(errors.ServingError) as err:
        fn(*args)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return err.value.message


def test_proto_round_trip():
    proto = tf.make_tensor_proto(np.array([[b"a", b""], [b"\xff", b"b"]], dtype=object))
    array = tensors.proto_to_array(F.HISTORY_ITEM_IDS, proto, STR_BL, LIMITS)
    assert array.tolist() == [[b"a", b""], [b"\xff", b"b"]]
    out = tensors.array_to_proto(np.array([[1.5, -2.0]], np.float32))
    assert tf.make_ndarray(out).tolist() == [[1.5, -2.0]]


def test_header_checks_name_the_input():
    ids = tf.make_tensor_proto(np.array([1, 2], np.int64))
    assert "'age'" in _invalid(tensors.proto_to_array, F.AGE, ids, STR_BL, LIMITS)
    assert "expects dtype string, got int64" in _invalid(
        tensors.proto_to_array, "x", ids, STR_BL, LIMITS
    )
    rank = _invalid(tensors.check_header, "x", tf.int64.as_datatype_enum, [2, 1], INT_B, LIMITS)
    assert "expects shape int64 [-1], got shape [2, 1]" in rank
    fixed = tensors.TensorSig(tf.int64, (None, 2))
    assert "got shape [1, 3]" in _invalid(
        tensors.check_header, "x", tf.int64.as_datatype_enum, [1, 3], fixed, LIMITS
    )
    assert "batch size 5 exceeds the limit 4" in _invalid(
        tensors.check_header, "x", tf.int64.as_datatype_enum, [5], INT_B, LIMITS
    )
    history = _invalid(
        tensors.check_header, F.HISTORY_ITEM_IDS, tf.string.as_datatype_enum, [1, 4], STR_BL, LIMITS
    )
    assert "history length 4 exceeds the limit 3" in history
    # Another [batch, L] input may be longer than max_history, but not over max_elements.
    tensors.check_header(F.ITEM_ID, tf.string.as_datatype_enum, [1, 50], STR_BL, LIMITS)
    assert "101 elements" in _invalid(
        tensors.check_header, F.ITEM_ID, tf.string.as_datatype_enum, [1, 101], STR_BL, LIMITS
    )
    assert "unknown dtype enum 999" in _invalid(tensors.check_header, "x", 999, [1], INT_B, LIMITS)


def test_malformed_content():
    proto = tf.make_tensor_proto(np.array([1, 2], np.int64))
    proto.tensor_content = proto.tensor_content[:-3]
    assert "'age': malformed" in _invalid(tensors.proto_to_array, F.AGE, proto, INT_B, LIMITS)
    proto = tf.make_tensor_proto(np.array([b"a", b"b"], dtype=object))
    sig = tensors.TensorSig(tf.string, (None,))
    proto.tensor_shape.dim[0].size = 3  # TF's rule: the last value repeats
    assert tensors.proto_to_array(F.USER_ID, proto, sig, LIMITS).tolist() == [b"a", b"b", b"b"]
    proto.tensor_shape.dim[0].size = 1  # more values than the shape holds
    assert "malformed" in _invalid(tensors.proto_to_array, F.USER_ID, proto, sig, LIMITS)


def test_batch_size():
    sigs = {"a": INT_B, "b": STR_BL}
    arrays = {"a": np.zeros(2), "b": np.zeros((2, 7))}
    assert tensors.batch_size(arrays, sigs) == 2
    arrays["b"] = np.zeros((3, 7))
    assert "input 'b': batch size 3 differs from input 'a' (2)" in _invalid(
        tensors.batch_size, arrays, sigs
    )
    fixed = {"a": INT_B, "c": tensors.TensorSig(tf.int64, (2,))}
    assert tensors.batch_size({"a": np.zeros(1), "c": np.zeros(2)}, fixed) is None


def test_json_conversion():
    strings = tensors.json_to_array("h", [["a", {"b64": "/w=="}]], STR_BL, LIMITS)
    assert strings.tolist() == [[b"a", b"\xff"]]
    assert tensors.array_to_json(strings) == [["a", {"b64": "/w=="}]]
    ints = tensors.json_to_array("age", [3, 4], INT_B, LIMITS)
    assert ints.dtype == np.int64 and ints.tolist() == [3, 4]
    floats = tensors.json_to_array("w", [1, 2.5], tensors.TensorSig(tf.float32, (None,)), LIMITS)
    assert floats.dtype == np.float32 and floats.tolist() == [1.0, 2.5]
    assert "'age': expects int64 values, got float64" in _invalid(
        tensors.json_to_array, "age", [1.5], INT_B, LIMITS
    )
    assert "'h': ragged" in _invalid(
        tensors.json_to_array, "h", [["a"], ["b", "c"]], STR_BL, LIMITS
    )
    assert "'h': expects strings" in _invalid(tensors.json_to_array, "h", [[1]], STR_BL, LIMITS)


def test_fast_paths_agree_with_tensorflow():
    arrays = [
        np.array([[1.5, -2.0]], np.float32),
        np.array([3, -4, 5], np.int64),
        np.array([[True, False]]),
        np.array([7], np.int32),
        np.array([[b"a", b"\x00b"], [b"", b"c"]], dtype=object),
        np.zeros((2, 0), np.float64),
    ]
    for array in arrays:
        ours = tensors.array_to_proto(array)
        np.testing.assert_array_equal(tf.make_ndarray(ours), array)
        assert ours.dtype == tf.make_tensor_proto(array).dtype
        sig = tensors.TensorSig(tf.as_dtype(ours.dtype), (None,) * array.ndim)
        for proto in (ours, tf.make_tensor_proto(array)):
            decoded = tensors.proto_to_array("x", proto, sig, LIMITS)
            assert decoded.dtype == tf.make_ndarray(proto).dtype
            np.testing.assert_array_equal(decoded, array)
    # Repeated fields instead of tensor_content (other clients): full length (the direct
    # path) for every numeric dtype, then TF's fill rule.
    for array in arrays[:4] + [np.array([[1, -2]], np.int8), np.array([200], np.uint8)]:
        proto = tf.make_tensor_proto(array)
        proto.ClearField("tensor_content")
        field = {"f": "float_val", "b": "bool_val"}.get(array.dtype.kind, "int_val")
        field = "int64_val" if array.dtype == np.int64 else field
        proto.ClearField(field)  # make_tensor_proto puts one-element tensors there
        getattr(proto, field).extend(array.ravel().tolist())
        sig = tensors.TensorSig(tf.as_dtype(proto.dtype), (None,) * array.ndim)
        decoded = tensors.proto_to_array("x", proto, sig, LIMITS)
        assert decoded.dtype == array.dtype and decoded.shape == array.shape
        np.testing.assert_array_equal(decoded, tf.make_ndarray(proto))
        np.testing.assert_array_equal(decoded, array)
    # Repeated fields instead of tensor_content (other clients), with TF's fill rule.
    proto = tf.make_tensor_proto(np.array([0, 0, 0], np.int64))
    proto.ClearField("tensor_content")
    proto.int64_val.extend([4, 9])
    assert tensors.proto_to_array("x", proto, INT_B, LIMITS).tolist() == [4, 9, 9]
