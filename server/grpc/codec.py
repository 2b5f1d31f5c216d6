"""ModelInferRequest -> numpy arrays and arrays -> ModelInferResponse. Tensors come as
`raw_input_contents` (little-endian bytes, what tritonclient and perf_analyzer send: read with
`np.frombuffer`, no copy) or as typed `contents`. The checks and limits are the REST codec's
(server/http/v2_codec.py): element counts and ranks refused before anything is allocated, BYTES
decoded by the same function, every failure a BadRequest naming the input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from server.contract.dtypes import V2_TO_NUMPY, numpy_to_v2, v2_itemsize
from server.errors import BadRequest
from server.grpc import shopserve_inference_pb2 as pb
from server.http.v2_codec import decode_bytes_elements, element_count, encode_bytes_tensor
from server.settings import Limits

__all__ = ["decode_inputs", "encode_response", "parameters_of", "wants_raw_outputs"]

# the typed `contents` field of each datatype; FP16 has none (raw only, as in the protocol)
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_MAX_INPUTS = 256  # as the REST schema (server/schemas/v2.py)


def parameters_of(params: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """A protobuf `map<string, InferParameter>` as the REST codec's scalar dict."""
    out: dict[str, bool | int | float | str] = {}
    for key, p in params.items():
        which = p.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(p, which)
    return out


def _shape(tensor: Any, where: str) -> list[int]:
    shape = list(tensor.shape)
    if any(d < 0 for d in shape):
        raise BadRequest(f"{where}.shape: {shape} has a negative dim")
    return shape


def _from_contents(tensor: Any, count: int, where: str, limits: Limits) -> np.ndarray:
    datatype = tensor.datatype
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise BadRequest(f"{where}: {datatype} has no typed contents; send raw_input_contents")
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise BadRequest(
            f"{where}.contents.{field}: {len(values)} elements do not match shape "
            f"{list(tensor.shape)} ({count})"
        )
    if datatype == "BYTES":
        if count > limits.max_bytes_elements:
            raise BadRequest(
                f"{where}: {count} BYTES elements exceed the limit of {limits.max_bytes_elements}"
            )
        out = np.empty(count, dtype=object)
        for j, v in enumerate(values):
            if len(v) > limits.max_bytes_length:
                raise BadRequest(
                    f"{where}: BYTES element {j} of {len(v)} bytes exceeds the limit of "
                    f"{limits.max_bytes_length}"
                )
            out[j] = v
        return out
    dtype = V2_TO_NUMPY[datatype]
    wire = {"int_contents": np.int32, "uint_contents": np.uint32}.get(field, dtype)
    arr = np.fromiter(values, dtype=wire, count=count)
    if wire is not dtype and arr.size:  # INT8/16 and UINT8/16 travel as 32-bit values
        info = np.iinfo(dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise BadRequest(f"{where}.contents.{field}: values out of range for {datatype}")
    return arr.astype(dtype, copy=False)


def _from_raw(tensor: Any, raw: bytes, count: int, where: str, limits: Limits) -> np.ndarray:
    if tensor.HasField("contents"):
        raise BadRequest(f"{where}: both `contents` and raw_input_contents given")
    if tensor.datatype == "BYTES":
        return decode_bytes_elements(memoryview(raw), count, where, limits)
    size = count * v2_itemsize(tensor.datatype)
    if len(raw) != size:
        raise BadRequest(
            f"{where}: raw_input_contents holds {len(raw)} bytes, shape {list(tensor.shape)} of "
            f"{tensor.datatype} needs {size}"
        )
    return np.frombuffer(raw, dtype=V2_TO_NUMPY[tensor.datatype].newbyteorder("<"))


def decode_inputs(request: Any, limits: Limits) -> dict[str, np.ndarray]:
    """Every input of a ModelInferRequest as a numpy array of its shape and datatype."""
    inputs, raw = request.inputs, request.raw_input_contents
    if not 1 <= len(inputs) <= _MAX_INPUTS:
        raise BadRequest(f"inputs: {len(inputs)} inputs; a request takes 1 to {_MAX_INPUTS}")
    if raw and len(raw) != len(inputs):
        raise BadRequest(
            f"raw_input_contents: {len(raw)} entries for {len(inputs)} inputs (one per input, "
            "or none)"
        )
    out: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}] ({tensor.name})"
        if not tensor.name:
            raise BadRequest(f"inputs[{i}].name: empty")
        if tensor.name in out:
            raise BadRequest(f"{where}: input given twice")
        if tensor.datatype not in V2_TO_NUMPY:
            raise BadRequest(f"{where}.datatype: unknown datatype '{tensor.datatype[:16]}'")
        shape = _shape(tensor, where)
        count = element_count(shape, where, limits)
        if raw:
            flat = _from_raw(tensor, raw[i], count, where, limits)
        else:
            flat = _from_contents(tensor, count, where, limits)
        out[tensor.name] = flat.reshape(shape)
    return out


def wants_raw_outputs(request: Any) -> bool:
    """Raw outputs when the inputs came raw (tritonclient, perf_analyzer: Triton always answers
    raw) or when the request asks with `binary_data_output` / an output's `binary_data`, as
    KServe does; typed `contents` otherwise."""
    if request.raw_input_contents:
        return True
    params = request.parameters
    if "binary_data_output" in params and params["binary_data_output"].bool_param:
        return True
    return any(
        "binary_data" in o.parameters and o.parameters["binary_data"].bool_param
        for o in request.outputs
    )


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str,
    outputs: dict[str, np.ndarray],
    raw: bool,
) -> Any:
    """A ModelInferResponse; all outputs raw, or all typed (FP16 has no typed field: raw then)."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version)
    if request_id:
        response.id = request_id
    datatypes = {name: numpy_to_v2(arr.dtype) for name, arr in outputs.items()}
    raw = raw or any(d not in CONTENTS_FIELD for d in datatypes.values())
    for name, arr in outputs.items():
        datatype = datatypes[name]
        tensor = response.outputs.add(name=name, datatype=datatype, shape=arr.shape)
        if raw:
            if datatype == "BYTES":
                blob = encode_bytes_tensor(arr.ravel().tolist())
            else:
                blob = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
            response.raw_output_contents.append(blob)
        else:
            values = arr.ravel().tolist()
            if datatype == "BYTES":
                values = [v if isinstance(v, bytes) else str(v).encode() for v in values]
            getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(values)
    return response
