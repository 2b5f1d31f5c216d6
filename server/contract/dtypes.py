"""Tensor data types: Triton config names, KServe V2 wire names, numpy and ONNX types.

A leaf module: everything that converts between the three vocabularies lives here.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CONFIG_TO_V2",
    "V2_TO_NUMPY",
    "ONNX_TO_CONFIG",
    "numpy_to_v2",
    "v2_itemsize",
]

# Triton's config names -> the V2 protocol's datatype strings.
CONFIG_TO_V2: dict[str, str] = {
    "TYPE_BOOL": "BOOL",
    "TYPE_UINT8": "UINT8",
    "TYPE_UINT16": "UINT16",
    "TYPE_UINT32": "UINT32",
    "TYPE_UINT64": "UINT64",
    "TYPE_INT8": "INT8",
    "TYPE_INT16": "INT16",
    "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64",
    "TYPE_FP16": "FP16",
    "TYPE_FP32": "FP32",
    "TYPE_FP64": "FP64",
    "TYPE_STRING": "BYTES",
}

# BYTES tensors are numpy object arrays of `bytes`.
V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NUMPY_TO_V2: dict[np.dtype, str] = {v: k for k, v in V2_TO_NUMPY.items()}

# onnxruntime reports input types as "tensor(float)" etc.
ONNX_TO_CONFIG: dict[str, str] = {
    "tensor(bool)": "TYPE_BOOL",
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(uint16)": "TYPE_UINT16",
    "tensor(uint32)": "TYPE_UINT32",
    "tensor(uint64)": "TYPE_UINT64",
    "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(float16)": "TYPE_FP16",
    "tensor(float)": "TYPE_FP32",
    "tensor(double)": "TYPE_FP64",
    "tensor(string)": "TYPE_STRING",
}


def numpy_to_v2(dtype: np.dtype) -> str:
    """The V2 datatype of a numpy dtype; unicode and bytes strings are BYTES."""
    if dtype.kind in ("U", "S", "O"):
        return "BYTES"
    return _NUMPY_TO_V2[np.dtype(dtype)]


def v2_itemsize(datatype: str) -> int:
    """Bytes per element in the binary extension; 0 for BYTES (length-prefixed)."""
    if datatype == "BYTES":
        return 0
    return V2_TO_NUMPY[datatype].itemsize
