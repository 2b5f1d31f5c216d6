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


class InferRequestInput(_Wire):
    name: Annotated[str, Meta(min_length=1)]
    shape: list[Annotated[int, Meta(ge=0)]]
    datatype: str
    parameters: dict[str, Any] = {}
    data: Any = None


class InferOutputRequest(_Wire):
    name: Annotated[str, Meta(min_length=1)]
    parameters: dict[str, Any] = {}


class InferRequest(_Wire):
    inputs: Annotated[list[InferRequestInput], Meta(min_length=1)]
    id: str | None = None
    parameters: dict[str, Any] = {}
    outputs: list[InferOutputRequest] = []


infer_request_decoder = msgspec.json.Decoder(InferRequest)
