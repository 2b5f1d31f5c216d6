"""Open Inference Protocol (KServe V2) REST routes: health, server and model metadata, config and
inference. Routes decode, look the model up and encode; batching and sessions stay behind
`LoadedModel.infer`. Repository, statistics and metrics routes are in `v2_repository.py`."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.types import ASGIApp

from server import __version__
from server.budget import server_timing
from server.contract.model_config import TensorConfig, triton_config
from server.control import is_ready
from server.engine.model import LoadedModel
from server.engine.repository import ModelRepository
from server.errors import BadRequest, ModelNotReady
from server.http.admission import content_length
from server.http.deadlines import TIMEOUT_HEADER, v2_timeout_us
from server.http.deps import Services, ServicesDep
from server.http.disconnect import until_disconnect
from server.http.responses import RawResponse, request_id_of
from server.http.v2_codec import decode_infer_request, decode_inputs, encode_infer_response
from server.schemas.v2 import InferRequest

__all__ = [
    "EXTENSIONS",
    "V2_ROUTES",
    "config_body",
    "json_response",
    "metadata_body",
    "wanted_outputs",
]

_encoder = msgspec.json.Encoder()
EXTENSIONS = ["binary_tensor_data", "model_repository", "statistics", "model_configuration"]


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=_encoder.encode(obj),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


# -- health and server metadata -------------------------------------------------------------------


@get("/v2/health/live", sync_to_thread=False)
def live() -> Response:
    return json_response({"live": True})


@get("/v2/health/ready", sync_to_thread=False)
def ready(state: State, services: ServicesDep) -> Response:
    ok = (
        bool(state.get("started"))
        and not services.admission.draining
        and is_ready(services.settings, services.repository, services.pipelines)
    )
    return json_response({"ready": ok}, 200 if ok else 503)


@get("/v2", sync_to_thread=False)
def server_metadata() -> Response:
    return json_response({"name": "shopserve", "version": __version__, "extensions": EXTENSIONS})


# -- model metadata, readiness, config ----------------------------------------------------------


def _verdict(model: LoadedModel) -> dict[str, str] | None:
    """The card's gate as string parameters; None for a model without a card."""
    return model.gate.as_parameters() if model.gate is not None else None


def metadata_body(repository: ModelRepository, name: str, version: str | None) -> dict[str, Any]:
    """A model's V2 metadata (REST and gRPC): the batch dim, when batched, is -1; `parameters`
    holds the card's gate verdict (REST only: gRPC's metadata message has no such field, its
    ModelConfig carries the verdict)."""
    model = repository.get(name, version)
    cfg = model.config
    batch = [-1] if cfg.max_batch_size > 0 else []

    def tensors(ts: list[TensorConfig]) -> list[dict[str, Any]]:
        return [{"name": t.name, "datatype": t.datatype, "shape": batch + list(t.dims)} for t in ts]

    body: dict[str, Any] = {
        "name": name,
        "versions": [str(v) for v in sorted(repository.entry(name).versions)],
        "platform": cfg.platform,
        "inputs": tensors(cfg.input),
        "outputs": tensors(cfg.output),
    }
    verdict = _verdict(model)
    if verdict is not None:
        body["parameters"] = verdict
    return body


def _metadata(repository: ModelRepository, name: str, version: str | None) -> Response:
    return json_response(metadata_body(repository, name, version))


@get("/v2/models/{model_name:str}", sync_to_thread=False)
def model_metadata(services: ServicesDep, model_name: FromPath[str]) -> Response:
    return _metadata(services.repository, model_name, None)


@get("/v2/models/{model_name:str}/versions/{model_version:str}", sync_to_thread=False)
def model_version_metadata(
    services: ServicesDep, model_name: FromPath[str], model_version: FromPath[str]
) -> Response:
    return _metadata(services.repository, model_name, model_version)


@get("/v2/models/{model_name:str}/ready", sync_to_thread=False)
def model_ready(services: ServicesDep, model_name: FromPath[str]) -> Response:
    services.repository.get(model_name, None)
    return json_response({"name": model_name, "ready": True})


@get("/v2/models/{model_name:str}/versions/{model_version:str}/ready", sync_to_thread=False)
def model_version_ready(
    services: ServicesDep, model_name: FromPath[str], model_version: FromPath[str]
) -> Response:
    services.repository.get(model_name, model_version)
    return json_response({"name": model_name, "version": model_version, "ready": True})


def _served_config(model: LoadedModel) -> dict[str, Any]:
    """The config as served: the instance groups each device really got (Triton, too, resolves
    KIND_AUTO), and the device choice beside the card's verdict in `parameters`."""
    body = triton_config(model.config, {**(_verdict(model) or {}), **model.device_parameters()})
    body["instance_group"] = model.instance_groups()
    return body


def config_body(repository: ModelRepository, name: str, version: str | None) -> dict[str, Any]:
    """A model's Triton config (REST and gRPC); without a version, the config as read even when
    no version is served."""
    if version in (None, ""):
        entry = repository.entry(name)
        if entry.config is None:
            raise ModelNotReady(f"model '{name}' has no valid config: {entry.reason}")
        if not entry.versions:
            return triton_config(entry.config)
        return _served_config(entry.versions[max(entry.versions)])
    return _served_config(repository.get(name, version))


@get("/v2/models/{model_name:str}/config", sync_to_thread=False)
def model_config(services: ServicesDep, model_name: FromPath[str]) -> Response:
    return json_response(config_body(services.repository, model_name, None))


@get("/v2/models/{model_name:str}/versions/{model_version:str}/config", sync_to_thread=False)
def model_version_config(
    services: ServicesDep, model_name: FromPath[str], model_version: FromPath[str]
) -> Response:
    return json_response(config_body(services.repository, model_name, model_version))


# -- inference ----------------------------------------------------------------------------------


def _binary_outputs(req: InferRequest, known: list[str]) -> set[str]:
    all_binary = bool(req.parameters.get("binary_data_output", False))
    if all_binary and not req.outputs:
        return set(known)
    return {o.name for o in req.outputs if o.parameters.get("binary_data", all_binary)}


def wanted_outputs(names: list[str], model: LoadedModel) -> list[str]:
    """The outputs a request names (REST and gRPC), refusing unknown ones; [] means all."""
    known = model.output_names
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise BadRequest(
            f"outputs: unknown output(s) {unknown} for model '{model.name}'; it has {sorted(known)}"
        )
    return names


async def _infer(
    request: Request, services: Services, name: str, version: str | None
) -> RawResponse:
    arrival = time.monotonic_ns()
    repository = services.repository
    headers = request.headers  # built from the scope on every access: once
    # admitted (or refused: 404, 503, 429) before the body is read
    full = repository.get(name, version).is_overloaded()
    with services.admission.admit(name, content_length(headers), full):
        return await _admitted(request, headers, services, name, version, arrival)


async def _admitted(
    request: Request,
    headers: Any,
    services: Services,
    name: str,
    version: str | None,
    arrival: int,
) -> RawResponse:
    rid = request_id_of(request, headers)
    body = await services.bodies.read(request)
    model = services.repository.get(name, version)  # after the body: a reload may have happened
    req, binary = decode_infer_request(body, headers.get("inference-header-content-length"))
    inputs = decode_inputs(req, binary, services.settings.limits)
    timeout_us = v2_timeout_us(req.parameters, headers.get(TIMEOUT_HEADER))
    wanted = wanted_outputs([o.name for o in req.outputs], model)
    deadline = model.deadline(arrival, timeout_us)
    result = await until_disconnect(
        request, model.infer(inputs, deadline_ns=deadline, request_id=rid)
    )
    outputs = result.outputs if not wanted else {k: result.outputs[k] for k in wanted}
    payload, header_len = encode_infer_response(
        name, str(model.version), req.id, outputs, _binary_outputs(req, model.output_names)
    )
    timing = {"queue": result.queue_ns, "infer": result.compute_ns}
    headers = {
        "X-Request-Id": rid,
        "Server-Timing": server_timing({**timing, "total": time.monotonic_ns() - arrival}),
    }
    if header_len is not None:
        headers["Inference-Header-Content-Length"] = str(header_len)
        return RawResponse(payload, "application/octet-stream", headers)
    return RawResponse(payload, "application/json", headers)


@post("/v2/models/{model_name:str}/infer", status_code=200)
async def infer(request: Request, services: ServicesDep, model_name: FromPath[str]) -> ASGIApp:
    return await _infer(request, services, model_name, None)


@post("/v2/models/{model_name:str}/versions/{model_version:str}/infer", status_code=200)
async def infer_version(
    request: Request,
    services: ServicesDep,
    model_name: FromPath[str],
    model_version: FromPath[str],
) -> ASGIApp:
    return await _infer(request, services, model_name, model_version)


V2_ROUTES = [
    live,
    ready,
    server_metadata,
    model_metadata,
    model_version_metadata,
    model_ready,
    model_version_ready,
    model_config,
    model_version_config,
    infer,
    infer_version,
]
