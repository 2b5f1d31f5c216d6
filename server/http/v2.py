"""Open Inference Protocol (KServe V2) REST routes, Triton's extensions included. Routes decode,
look the model up and encode; batching and sessions stay behind `LoadedModel.infer`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server import __version__
from server.budget import server_timing, timeout_header_ms
from server.errors import BadRequest, ModelNotFound, ModelNotReady
from server.engine.model import LoadedModel
from server.contract.model_config import triton_config
from server.engine.repository import ModelRepository
from server.http.responses import request_id_of
from server.http.v2_codec import decode_infer_request, decode_inputs, encode_infer_response

__all__ = ["V2_ROUTES"]

_encoder = msgspec.json.Encoder()
EXTENSIONS = ["binary_tensor_data", "model_repository", "statistics", "model_configuration"]


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=_encoder.encode(obj),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _repo(request: Request) -> ModelRepository:
    return request.app.state.repository


def _model(request: Request, name: str, version: str | None) -> LoadedModel:
    served = _repo(request).get(name, version)
    if not isinstance(served, LoadedModel):
        raise BadRequest(f"model_name: '{name}' is a pipeline; call it through its /v1 endpoint")
    return served


# -- health and server metadata -------------------------------------------------------------------


@get("/v2/health/live", sync_to_thread=False)
def live() -> Response:
    return _json({"live": True})


@get("/v2/health/ready", sync_to_thread=False)
def ready(request: Request) -> Response:
    state = request.app.state
    ok = bool(state.get("started")) and not state.get("draining")
    return _json({"ready": ok}, 200 if ok else 503)


@get("/v2", sync_to_thread=False)
def server_metadata() -> Response:
    return _json({"name": "shopserve", "version": __version__, "extensions": EXTENSIONS})


# -- model metadata, readiness, config ----------------------------------------------------------


def _metadata(request: Request, name: str, version: str | None) -> Response:
    repo = _repo(request)
    served = repo.get(name, version)
    entry = repo.entry(name)
    cfg = served.config
    batch = [-1] if cfg.max_batch_size > 0 else []

    def tensors(ts: list) -> list[dict[str, Any]]:
        return [{"name": t.name, "datatype": t.datatype, "shape": batch + list(t.dims)} for t in ts]

    body = {
        "name": name,
        "versions": [str(v) for v in sorted(entry.versions)],
        "platform": cfg.platform,
        "inputs": tensors(cfg.input),
        "outputs": tensors(cfg.output),
    }
    return _json(body)


@get("/v2/models/{model_name:str}", sync_to_thread=False)
def model_metadata(request: Request, model_name: FromPath[str]) -> Response:
    return _metadata(request, model_name, None)


@get("/v2/models/{model_name:str}/versions/{model_version:str}", sync_to_thread=False)
def model_version_metadata(
    request: Request, model_name: FromPath[str], model_version: FromPath[str]
) -> Response:
    return _metadata(request, model_name, model_version)


@get("/v2/models/{model_name:str}/ready", sync_to_thread=False)
def model_ready(request: Request, model_name: FromPath[str]) -> Response:
    _repo(request).get(model_name, None)
    return _json({"name": model_name, "ready": True})


@get("/v2/models/{model_name:str}/versions/{model_version:str}/ready", sync_to_thread=False)
def model_version_ready(
    request: Request, model_name: FromPath[str], model_version: FromPath[str]
) -> Response:
    _repo(request).get(model_name, model_version)
    return _json({"name": model_name, "version": model_version, "ready": True})


@get("/v2/models/{model_name:str}/config", sync_to_thread=False)
def model_config(request: Request, model_name: FromPath[str]) -> Response:
    entry = _repo(request).entry(model_name)
    if entry.config is None:
        raise ModelNotReady(f"model '{model_name}' has no valid config: {entry.reason}")
    return _json(triton_config(entry.config))


@get("/v2/models/{model_name:str}/versions/{model_version:str}/config", sync_to_thread=False)
def model_version_config(
    request: Request, model_name: FromPath[str], model_version: FromPath[str]
) -> Response:
    return _json(triton_config(_repo(request).get(model_name, model_version).config))


# -- inference ----------------------------------------------------------------------------------


def _timeout_us(request: Request, params: dict[str, Any]) -> int | None:
    """The smallest of V2 `parameters.timeout` (us) and header `X-Request-Timeout-Ms`."""
    given: list[int] = []
    t = params.get("timeout")
    if t is not None:
        if not isinstance(t, int) or isinstance(t, bool) or t < 0:
            raise BadRequest("parameters.timeout: must be a non-negative integer (microseconds)")
        given.append(t)
    header = request.headers.get("x-request-timeout-ms")
    if header is not None:
        given.append(int(timeout_header_ms(header) * 1000))
    return min(given) if given else None


async def _next_message(request: Request) -> Any:
    return await request.receive()


async def _infer(request: Request, name: str, version: str | None) -> Response:
    arrival = time.monotonic_ns()
    rid = request_id_of(request)
    model = _model(request, name, version)
    body = await request.body()
    req, binary = decode_infer_request(body, request.headers.get("inference-header-content-length"))
    inputs = decode_inputs(req, binary)
    timeout_us = _timeout_us(request, req.parameters)
    known = {t.name for t in model.config.output} or set(model.runner.output_names)
    wanted = [o.name for o in req.outputs]
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise BadRequest(
            f"outputs: unknown output(s) {unknown} for model '{name}'; it has {sorted(known)}"
        )
    all_binary = bool(req.parameters.get("binary_data_output", False))
    binary_out = {o.name for o in req.outputs if o.parameters.get("binary_data", all_binary)}
    if all_binary and not req.outputs:
        binary_out = set(known)

    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()
    # a client that goes away cancels its queued request before it runs
    watcher: asyncio.Task[Any] = loop.create_task(_next_message(request))
    watcher.add_done_callback(lambda t: None if t.cancelled() or fut.done() else fut.cancel())
    try:
        result = await model.infer(
            inputs, arrival_ns=arrival, timeout_us=timeout_us, request_id=rid, future=fut
        )
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():
            return Response(content=b"", status_code=499)  # nobody is listening
        raise
    finally:
        watcher.cancel()
    outputs = result.outputs if not wanted else {k: result.outputs[k] for k in wanted}
    payload, header_len = encode_infer_response(
        name, str(model.version), req.id, outputs, binary_out
    )
    headers = {
        "X-Request-Id": rid,
        "Server-Timing": server_timing(
            {
                "queue": result.queue_ns,
                "infer": result.compute_ns,
                "total": time.monotonic_ns() - arrival,
            }
        ),
    }
    if header_len is not None:
        headers["Inference-Header-Content-Length"] = str(header_len)
        return Response(content=payload, media_type="application/octet-stream", headers=headers)
    return Response(content=payload, media_type="application/json", headers=headers)


@post("/v2/models/{model_name:str}/infer", status_code=200)
async def infer(request: Request, model_name: FromPath[str]) -> Response:
    return await _infer(request, model_name, None)


@post("/v2/models/{model_name:str}/versions/{model_version:str}/infer", status_code=200)
async def infer_version(
    request: Request, model_name: FromPath[str], model_version: FromPath[str]
) -> Response:
    return await _infer(request, model_name, model_version)


# -- repository ------------------------------------------------------------------------------------


async def _optional_json(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        obj = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"request body: malformed JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadRequest("request body: expected a JSON object")
    return obj


@post("/v2/repository/index", status_code=200)
async def repository_index(request: Request) -> Response:
    params = await _optional_json(request)
    ready_only = params.get("ready", False)
    if not isinstance(ready_only, bool):
        raise BadRequest("ready: must be true or false")
    rows = _repo(request).index()
    if ready_only:
        rows = [r for r in rows if r["state"] == "READY"]
    return _json(rows)


@post("/v2/repository/models/{model_name:str}/load", status_code=200)
async def repository_load(request: Request, model_name: FromPath[str]) -> Response:
    params = await _optional_json(request)
    extra = sorted(set(params) - {"parameters"})
    if extra:
        raise BadRequest(f"unexpected field(s) {extra}; the load request takes `parameters`")
    await _repo(request).load(model_name)
    return _json({})


@post("/v2/repository/models/{model_name:str}/unload", status_code=200)
async def repository_unload(request: Request, model_name: FromPath[str]) -> Response:
    await _optional_json(request)
    await _repo(request).unload(model_name)
    return _json({})


# -- statistics and metrics ------------------------------------------------------------------------


def _stats(request: Request, name: str | None, version: str | None) -> Response:
    repo = _repo(request)
    if name is None:
        models = repo.ready_models()
    elif version is None:
        entry = repo.entry(name)
        models = list(entry.versions.values())
        if not models:
            raise ModelNotReady(f"model '{name}' is not loaded")
    else:
        models = [repo.get(name, version)]
    return _json({"model_stats": [m.stats.as_triton() for m in models if hasattr(m, "stats")]})


@get("/v2/models/stats", sync_to_thread=False)
def all_stats(request: Request) -> Response:
    return _stats(request, None, None)


@get("/v2/models/{model_name:str}/stats", sync_to_thread=False)
def model_stats(request: Request, model_name: FromPath[str]) -> Response:
    return _stats(request, model_name, None)


@get("/v2/models/{model_name:str}/versions/{model_version:str}/stats", sync_to_thread=False)
def model_version_stats(
    request: Request, model_name: FromPath[str], model_version: FromPath[str]
) -> Response:
    if not model_version.isdigit():
        raise ModelNotFound(f"unknown version '{model_version}' of model '{model_name}'")
    return _stats(request, model_name, model_version)


@get("/metrics", sync_to_thread=False)
def metrics(request: Request) -> Response:
    data = generate_latest(request.app.state.metrics.registry)
    return Response(content=data, media_type=CONTENT_TYPE_LATEST)


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
    repository_index,
    repository_load,
    repository_unload,
    all_stats,
    model_stats,
    model_version_stats,
    metrics,
]
