"""Wire types of the Open Inference Protocol (KServe V2) REST API, as msgspec Structs."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from server.schemas.base import Wire

__all__ = [
    "InferOutputRequest",
    "InferRequest",
    "InferRequestInput",
    "infer_request_decoder",
]


class _Wire(Wire, omit_defaults=True):
    pass


# The protocol's parameters are scalars ($parameter: bool | number | string): nesting is refused
# at decode time, with the field's path, instead of reaching code that recurses.
Parameters = dict[Annotated[str, Meta(max_length=256)], bool | int | float | str]
TensorName = Annotated[str, Meta(min_length=1, max_length=256)]


class InferRequestInput(_Wire):
    name: TensorName
    shape: Annotated[list[Annotated[int, Meta(ge=0)]], Meta(max_length=64)]
    datatype: Annotated[str, Meta(max_length=16)]
    parameters: Parameters = {}
    data: Any = None


class InferOutputRequest(_Wire):
    name: TensorName
    parameters: Parameters = {}


class InferRequest(_Wire):
    inputs: Annotated[list[InferRequestInput], Meta(min_length=1, max_length=256)]
    id: Annotated[str, Meta(max_length=256)] | None = None
    parameters: Parameters = {}
    outputs: Annotated[list[InferOutputRequest], Meta(max_length=256)] = []


infer_request_decoder = msgspec.json.Decoder(InferRequest)
