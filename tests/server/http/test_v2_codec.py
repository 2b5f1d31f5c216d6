"""The V2 JSON codec's two ways to decode `data`: numbers straight into an array by numpy in one
call (flat, or nested exactly as the shape says), and the element-wise path for everything else,
which refuses what it cannot decode with a message naming the field. Both give the same arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from server.errors import BadRequest
from server.http.v2_codec import decode_infer_request, decode_inputs


def _decode(shape: list[int], datatype: str, data) -> np.ndarray:
    body = {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}
    req, binary = decode_infer_request(json.dumps(body).encode(), None)
    return decode_inputs(req, binary)["x"]


@pytest.mark.parametrize(
    ("shape", "datatype", "data", "expected"),
    [
        ([2, 3], "FP32", [1, 2, 3, 4, 5, 6.5], np.array([[1, 2, 3], [4, 5, 6.5]], np.float32)),
        ([2, 3], "FP32", [[1, 2, 3], [4, 5, 6.5]], np.array([[1, 2, 3], [4, 5, 6.5]], np.float32)),
        ([2, 2], "INT32", [[1, -2], [3, 4]], np.array([[1, -2], [3, 4]], np.int32)),
        ([1, 3], "INT64", [7, 8, 2**40], np.array([[7, 8, 2**40]], np.int64)),
        ([1, 2], "FP64", [True, 2], np.array([[1.0, 2.0]], np.float64)),
        ([1, 2], "FP32", [3.4e38, -3.4e38], np.array([[3.4e38, -3.4e38]], np.float32)),
        ([1, 2], "FP16", [65504, -1e-9], np.array([[65504, -1e-9]], np.float16)),
        ([2, 2], "BOOL", [True, False, False, True], np.array([[1, 0], [0, 1]], bool)),
        # nested otherwise than the shape (allowed as Triton allows it): the element-wise path
        ([2, 2], "FP32", [[1, 2, 3, 4]], np.array([[1, 2], [3, 4]], np.float32)),
    ],
)
def test_numbers_decode_to_the_declared_shape_and_type(shape, datatype, data, expected):
    got = _decode(shape, datatype, data)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("shape", "datatype", "data", "needle"),
    [
        ([1, 3], "FP32", [1, 2], "2 elements do not match shape"),
        ([1, 2], "FP32", [[1, 2], [3]], "do not match shape"),
        ([1, 2], "FP32", ["a", "b"], "numbers"),
        ([1, 2], "INT32", [1.5, 2], "non-integer values"),
        ([1, 2], "INT8", [1, 300], "out of range"),
        ([1, 2], "UINT8", [1, -1], "out of range"),
        # a cast would make these inf, which the model would answer with NaN (JSON null)
        ([1, 2], "FP32", [1, 1e39], "out of range for FP32"),
        ([1, 2], "FP32", [[1, -1e39]], "out of range for FP32"),  # the element-wise path
        ([1, 2], "FP16", [1, 70000], "out of range for FP16"),
        ([1, 2], "FP32", [[[1, 2]]], "nested deeper"),
    ],
)
def test_what_numpy_cannot_take_is_refused_naming_the_field(shape, datatype, data, needle):
    with pytest.raises(BadRequest) as err:
        _decode(shape, datatype, data)
    assert "inputs[0] (x).data" in str(err.value) and needle in str(err.value)
