"""Tensors on the wire <-> numpy: JSON `data` arrays and the binary tensor data extension
(`Inference-Header-Content-Length`, `binary_data_size`, BYTES as 4-byte little-endian length +
bytes). Every failure is a BadRequest naming the input."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import msgspec
import numpy as np

from server.contract.dtypes import V2_TO_NUMPY, numpy_to_v2, v2_itemsize
from server.errors import BadRequest, bad_request_from_decode
from server.schemas.v2 import InferRequest, InferRequestInput, infer_request_decoder
from server.settings import Limits

__all__ = [
    "decode_bytes_elements",
    "decode_infer_request",
    "decode_inputs",
    "element_count",
    "encode_bytes_tensor",
    "encode_infer_response",
]

_json_encoder = msgspec.json.Encoder()
_DEFAULT_LIMITS = Limits()
_U32 = struct.Struct("<I")


def decode_infer_request(body: bytes, header_length: str | None) -> tuple[InferRequest, memoryview]:
    """Split the body into the JSON header and the binary part; decode the header."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise BadRequest(
                f"Inference-Header-Content-Length: '{header_length}' is not an integer"
            ) from None
        if n < 0 or n > len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length: {n} is outside the body of {len(body)} bytes"
            )
        head, rest = body[:n], memoryview(body)[n:]
    else:
        head, rest = body, memoryview(b"")
    try:
        req = infer_request_decoder.decode(head)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise bad_request_from_decode(exc) from None
    except RecursionError:  # msgspec decodes `data` (any JSON) recursively
        raise BadRequest("request body: JSON nested too deeply") from None
    return req, rest


def decode_bytes_elements(buf: memoryview, count: int, where: str, limits: Limits) -> np.ndarray:
    """`count` BYTES elements, each a 4-byte little-endian length and its bytes (the binary
    extension and gRPC's raw contents alike)."""
    if count > limits.max_bytes_elements:
        raise BadRequest(
            f"{where}: {count} BYTES elements exceed the limit of {limits.max_bytes_elements}"
        )
    if 4 * count > len(buf):
        raise BadRequest(f"{where}: {len(buf)} bytes cannot hold {count} length-prefixed elements")
    out = np.empty(count, dtype=object)
    pos = 0
    for i in range(count):
        if pos + 4 > len(buf):
            raise BadRequest(f"{where}: BYTES element {i} length prefix runs past the data")
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
        if pos + n > len(buf):
            raise BadRequest(f"{where}: BYTES element {i} of {n} bytes runs past the data")
        if n > limits.max_bytes_length:
            raise BadRequest(
                f"{where}: BYTES element {i} of {n} bytes exceeds the limit of "
                f"{limits.max_bytes_length}"
            )
        out[i] = bytes(buf[pos : pos + n])
        pos += n
    if pos != len(buf):
        raise BadRequest(f"{where}: {len(buf) - pos} bytes left over after {count} BYTES elements")
    return out


def _flatten(data: Any, where: str, rank: int) -> list:
    """Nested JSON lists -> a flat list (Triton accepts both flat and nested row-major); nested
    no deeper than the input's rank."""
    if not isinstance(data, list):
        raise BadRequest(f"{where}.data: expected a list, got {type(data).__name__}")
    if not data or not isinstance(data[0], list):
        return data
    flat: list = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                if len(stack) >= max(rank, 1):
                    raise BadRequest(f"{where}.data: nested deeper than the shape's {rank} dims")
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _numeric_fast(inp: InferRequestInput, count: int) -> np.ndarray | None:
    """Numeric `data` straight into an array (C, no Python loop over the elements), flat or
    nested exactly as the shape says; None for anything else (ragged, mixed, strings, a size
    that does not match), which the element-wise path decodes or refuses with its own message."""
    data = inp.data
    if inp.datatype in ("BYTES", "BOOL") or not isinstance(data, list):
        return None
    try:
        arr = np.array(data)
    except (TypeError, ValueError, OverflowError):
        return None
    if arr.dtype.kind not in "iufb" or arr.size != count:
        return None
    if arr.ndim != 1 and arr.shape != tuple(inp.shape):
        return None
    return arr.reshape(-1)


def _decode_json_data(inp: InferRequestInput, count: int, where: str) -> np.ndarray:
    fast = _numeric_fast(inp, count)
    if fast is not None:
        return _as_declared(fast, inp.datatype, where)
    flat = _flatten(inp.data, where, len(inp.shape))
    if len(flat) != count:
        raise BadRequest(
            f"{where}.data: {len(flat)} elements do not match shape {inp.shape} ({count})"
        )
    if inp.datatype == "BYTES":
        out = np.empty(count, dtype=object)
        for i, v in enumerate(flat):
            if isinstance(v, str):
                out[i] = v.encode()
            elif isinstance(v, bytes):
                out[i] = v
            else:
                raise BadRequest(f"{where}.data[{i}]: BYTES elements must be strings")
        return out
    dtype = V2_TO_NUMPY[inp.datatype]
    try:
        if dtype.kind == "b":
            if not all(isinstance(v, bool) for v in flat):
                raise BadRequest(f"{where}.data: BOOL elements must be true/false")
            return np.array(flat, dtype=dtype)
        arr = np.array(flat)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRequest(f"{where}.data: not numbers of {inp.datatype}: {exc}") from None
    if arr.dtype.kind not in "iufb" or (count and arr.ndim != 1):
        raise BadRequest(f"{where}.data: elements must be numbers for datatype {inp.datatype}")
    return _as_declared(arr, inp.datatype, where)


def _as_declared(arr: np.ndarray, datatype: str, where: str) -> np.ndarray:
    """Numbers decoded from JSON (int64, float64 or bool) as the declared datatype: refused
    when they are not integers for an integer type, or out of its range. JSON numbers are
    finite (msgspec refuses NaN, Infinity and 1e400), so an infinite FP32 / FP16 value can only
    be a number beyond the type's range, which a cast would silently turn into inf."""
    dtype = V2_TO_NUMPY[datatype]
    if dtype.kind in "iu" and arr.dtype.kind == "f":
        raise BadRequest(f"{where}.data: non-integer values for datatype {datatype}")
    if dtype.kind in "iu" and arr.size:
        info = np.iinfo(dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise BadRequest(f"{where}.data: values out of range for {datatype}")
    if dtype.kind != "f" or dtype.itemsize >= arr.dtype.itemsize:
        return arr.astype(dtype, copy=False)
    with np.errstate(over="ignore"):
        out = arr.astype(dtype)
    if out.size and not np.isfinite(out).all():
        limit = float(np.finfo(dtype).max)
        raise BadRequest(f"{where}.data: values out of range for {datatype} (beyond ±{limit:.6g})")
    return out


def element_count(shape: list[int], where: str, limits: Limits) -> int:
    """Elements of `shape`, refusing ranks and sizes over the limits before any allocation."""
    if len(shape) > limits.max_rank:
        raise BadRequest(f"{where}.shape: {len(shape)} dims exceed the limit of {limits.max_rank}")
    count = 1
    for d in shape:
        if d > limits.max_elements:
            raise BadRequest(
                f"{where}.shape: dim {d} exceeds the limit of {limits.max_elements} elements"
            )
        count *= d
    if count > limits.max_elements:
        raise BadRequest(
            f"{where}.shape: {shape} holds {count} elements, over the limit of "
            f"{limits.max_elements}"
        )
    return count


def decode_inputs(
    req: InferRequest, binary: memoryview, limits: Limits = _DEFAULT_LIMITS
) -> dict[str, np.ndarray]:
    """Every input as a numpy array of its declared shape and datatype."""
    out: dict[str, np.ndarray] = {}
    pos = 0
    for i, inp in enumerate(req.inputs):
        where = f"inputs[{i}] ({inp.name})"
        if inp.name in out:
            raise BadRequest(f"{where}: input given twice")
        if inp.datatype not in V2_TO_NUMPY:
            raise BadRequest(f"{where}.datatype: unknown datatype '{inp.datatype}'")
        count = element_count(inp.shape, where, limits)
        size = inp.parameters.get("binary_data_size")
        if size is not None:
            if inp.data is not None:
                raise BadRequest(f"{where}: both `data` and `binary_data_size` given")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise BadRequest(
                    f"{where}.parameters.binary_data_size: must be a non-negative integer"
                )
            if pos + size > len(binary):
                raise BadRequest(
                    f"{where}.parameters.binary_data_size: {size} bytes at offset {pos} run past "
                    f"the {len(binary)} bytes of binary data"
                )
            chunk = binary[pos : pos + size]
            pos += size
            if inp.datatype == "BYTES":
                flat = decode_bytes_elements(chunk, count, where, limits)
            else:
                itemsize = v2_itemsize(inp.datatype)
                if size != count * itemsize:
                    raise BadRequest(
                        f"{where}.parameters.binary_data_size: {size} bytes do not match shape "
                        f"{inp.shape} of {inp.datatype} ({count * itemsize} bytes)"
                    )
                flat = np.frombuffer(chunk, dtype=V2_TO_NUMPY[inp.datatype].newbyteorder("<"))
        elif inp.data is None:
            raise BadRequest(f"{where}: neither `data` nor `parameters.binary_data_size` given")
        else:
            flat = _decode_json_data(inp, count, where)
        out[inp.name] = flat.reshape(inp.shape)
    if pos != len(binary):
        raise BadRequest(
            f"binary data: {len(binary) - pos} bytes after the inputs are not claimed by any "
            "`binary_data_size`"
        )
    return out


def encode_bytes_tensor(values: Iterable[Any]) -> bytes:
    parts = []
    for v in values:
        b = v if isinstance(v, bytes) else str(v).encode()
        parts.append(_U32.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


def _json_value(arr: np.ndarray) -> list:
    if arr.dtype == np.dtype(object) or arr.dtype.kind in "SU":
        return [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in arr.ravel().tolist()
        ]
    return arr.ravel().tolist()


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: dict[str, np.ndarray],
    binary_outputs: set[str],
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length."""
    entries = []
    blobs: list[bytes] = []
    for name, arr in outputs.items():
        datatype = numpy_to_v2(arr.dtype)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if name in binary_outputs:
            if datatype == "BYTES":
                blob = encode_bytes_tensor(arr.ravel().tolist())
            else:
                blob = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _json_value(arr)
        entries.append(entry)
    body: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": entries,
    }
    if request_id is not None:
        body["id"] = request_id
    head = _json_encoder.encode(body)
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)
