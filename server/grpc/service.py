"""`inference.GRPCInferenceService`: the V2 gRPC methods over the same services as the REST
routes (server/http/deps.py). Each method is the REST route's twin and calls the same functions:
metadata, config and statistics bodies, admission before the tensors are decoded, the timeout
rule, the admin check, `LoadedModel.infer`. Errors are raised as the server's own classes and
answered by `status.guarded`, the one mapping to gRPC status codes."""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.protobuf import json_format
from grpc.aio import ServicerContext as Context

from server import __version__
from server.control import is_ready
from server.errors import ModelNotFound, ModelNotReady
from server.grpc import shopserve_inference_pb2 as pb
from server.grpc.codec import decode_inputs, encode_response, parameters_of, wants_raw_outputs
from server.grpc.status import guarded
from server.http.admin import check_model_control
from server.http.deadlines import v2_timeout_us
from server.http.deps import Services
from server.http.siblings import load_everywhere, unload_everywhere
from server.http.v2 import EXTENSIONS, config_body, metadata_body, wanted_outputs
from server.http.v2_repository import stats_everywhere
from server.request_ids import new_request_id

__all__ = ["SERVICE", "InferenceService", "generic_handlers"]

# the path clients call: KServe's and Triton's package and service name (the messages are in a
# package of our own, see shopserve_inference.proto); the same methods also answer under the
# .proto's own name, for tools that read that file (grpcurl -proto, code generated from it)
SERVICE = "inference.GRPCInferenceService"
PROTO_SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]


def _metadata_value(context: Context, key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode("latin-1")
    return ""


def _grpc_deadline_ns(context: Context) -> int:
    """The call's gRPC deadline on the monotonic clock (ns), 0 when it has none."""
    remaining_s = context.time_remaining()
    if remaining_s is None:
        return 0
    return time.monotonic_ns() + max(0, int(remaining_s * 1e9))


class InferenceService:
    def __init__(self, services: Services) -> None:
        self.services = services

    # -- health and metadata ---------------------------------------------------------------------

    async def ServerLive(self, request: Any, context: Context) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Context) -> Any:
        s = self.services
        ok = not s.admission.draining and is_ready(s.settings, s.repository, s.pipelines)
        return pb.ServerReadyResponse(ready=ok)

    async def ModelReady(self, request: Any, context: Context) -> Any:
        # as Triton: an unknown or unready model is "not ready", not an error
        try:
            self.services.repository.get(request.name, request.version or None)
        except (ModelNotFound, ModelNotReady):
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: Context) -> Any:
        return pb.ServerMetadataResponse(
            name="shopserve", version=__version__, extensions=EXTENSIONS
        )

    async def ModelMetadata(self, request: Any, context: Context) -> Any:
        body = metadata_body(self.services.repository, request.name, request.version or None)
        body.pop("parameters", None)  # the card's verdict: REST only, gRPC's ModelConfig has it
        return json_format.ParseDict(body, pb.ModelMetadataResponse())

    async def ModelConfig(self, request: Any, context: Context) -> Any:
        body = config_body(self.services.repository, request.name, request.version or None)
        # fields that this proto does not declare are left out (see shopserve_inference.proto)
        config = json_format.ParseDict(body, pb.ModelConfig(), ignore_unknown_fields=True)
        return pb.ModelConfigResponse(config=config)

    async def ModelStatistics(self, request: Any, context: Context) -> Any:
        body = await stats_everywhere(self.services, request.name or None, request.version or None)
        return json_format.ParseDict(body, pb.ModelStatisticsResponse(), ignore_unknown_fields=True)

    # -- repository ------------------------------------------------------------------------------

    async def RepositoryIndex(self, request: Any, context: Context) -> Any:
        rows = self.services.repository.index()
        if request.ready:
            rows = [r for r in rows if r["state"] == "READY"]
        return pb.RepositoryIndexResponse(
            models=[pb.RepositoryIndexResponse.ModelIndex(**r) for r in rows]
        )

    async def RepositoryModelLoad(self, request: Any, context: Context) -> Any:
        check_model_control(_metadata_value(context, "authorization"), self.services.settings)
        await load_everywhere(self.services, request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Any, context: Context) -> Any:
        check_model_control(_metadata_value(context, "authorization"), self.services.settings)
        await unload_everywhere(self.services, request.model_name)
        return pb.RepositoryModelUnloadResponse()

    # -- inference -------------------------------------------------------------------------------

    async def ModelInfer(self, request: Any, context: Context) -> Any:
        arrival = time.monotonic_ns()
        s = self.services
        name, version = request.model_name, request.model_version or None
        # admitted (or refused: NOT_FOUND, UNAVAILABLE) before any tensor is decoded
        full = s.repository.get(name, version).is_overloaded()
        with s.admission.admit(name, request.ByteSize(), full):
            rid = _metadata_value(context, "x-request-id") or request.id or new_request_id()
            inputs = decode_inputs(request, s.settings.limits)
            timeout_us = v2_timeout_us(parameters_of(request.parameters), None)
            model = s.repository.get(name, version)  # a reload may have happened meanwhile
            wanted = wanted_outputs([o.name for o in request.outputs], model)
            # the model's policy decides whether `timeout` may shorten its deadline; the gRPC
            # deadline always does: past it, the client has gone
            deadline = model.deadline(arrival, timeout_us)
            if grpc_deadline := _grpc_deadline_ns(context):
                deadline = min(deadline, grpc_deadline) if deadline else grpc_deadline
            result = await model.infer(inputs, deadline_ns=deadline, request_id=rid)
        outputs = result.outputs if not wanted else {k: result.outputs[k] for k in wanted}
        return encode_response(
            name, str(model.version), request.id, outputs, wants_raw_outputs(request)
        )


def generic_handlers(service: InferenceService) -> tuple[grpc.GenericRpcHandler, ...]:
    """Every method of the service in the .proto, guarded, under both service names."""
    metrics = service.services.metrics
    table = {}
    for method in PROTO_SERVICE.methods:
        request_cls = getattr(pb, method.input_type.name)
        response_cls = getattr(pb, method.output_type.name)
        table[method.name] = grpc.unary_unary_rpc_method_handler(
            guarded(method.name, getattr(service, method.name), metrics),
            request_deserializer=request_cls.FromString,
            response_serializer=response_cls.SerializeToString,
        )
    return tuple(
        grpc.method_handlers_generic_handler(name, table)
        for name in (SERVICE, PROTO_SERVICE.full_name)
    )
