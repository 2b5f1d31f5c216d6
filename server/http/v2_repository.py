"""Triton's repository, statistics and metrics extensions of the V2 API. With several workers,
load / unload reach every worker and statistics are summed over them (server/http/siblings.py);
a sibling's own call (its token in `x-shopserve-sibling`) is answered by this worker alone."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath
from prometheus_client import CONTENT_TYPE_LATEST

from server.engine.model import LoadedModel
from server.engine.repository import ModelRepository
from server.errors import BadRequest, ModelNotFound, ModelNotReady
from server.http.admin import check_admin
from server.http.deps import Services, ServicesDep
from server.http.siblings import gather_stats, load_everywhere, unload_everywhere
from server.http.v2 import json_response

__all__ = ["V2_REPOSITORY_ROUTES", "stats_body", "stats_everywhere"]


async def _optional_json(request: Request, services: Services) -> dict[str, Any]:
    body = await services.bodies.read(request)
    if not body.strip():
        return {}
    try:
        obj = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"request body: malformed JSON: {exc}") from None
    except RecursionError:  # msgspec decodes recursively: deep nesting must not be a 500
        raise BadRequest("request body: JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise BadRequest("request body: expected a JSON object")
    return obj


@post("/v2/repository/index", status_code=200)
async def repository_index(request: Request, services: ServicesDep) -> Response:
    params = await _optional_json(request, services)
    ready_only = params.get("ready", False)
    if not isinstance(ready_only, bool):
        raise BadRequest("ready: must be true or false")
    rows = services.repository.index()
    if ready_only:
        rows = [r for r in rows if r["state"] == "READY"]
    return json_response(rows)


@post("/v2/repository/models/{model_name:str}/load", status_code=200)
async def repository_load(
    request: Request, services: ServicesDep, model_name: FromPath[str]
) -> Response:
    sibling = _from_sibling(request, services)
    if not sibling:
        check_admin(request, services.settings)
    params = await _optional_json(request, services)
    extra = sorted(set(params) - {"parameters"})
    if extra:
        raise BadRequest(f"unexpected field(s) {extra}; the load request takes `parameters`")
    if sibling:
        await services.repository.load(model_name)
    else:
        await load_everywhere(services, model_name)
    return json_response({})


@post("/v2/repository/models/{model_name:str}/unload", status_code=200)
async def repository_unload(
    request: Request, services: ServicesDep, model_name: FromPath[str]
) -> Response:
    sibling = _from_sibling(request, services)
    if not sibling:
        check_admin(request, services.settings)
    await _optional_json(request, services)
    if sibling:
        await services.repository.unload(model_name)
    else:
        await unload_everywhere(services, model_name)
    return json_response({})


def _from_sibling(request: Request, services: Services) -> bool:
    return services.siblings is not None and services.siblings.is_sibling_call(request.headers)


def stats_body(repository: ModelRepository, name: str | None, version: str | None) -> dict:
    """Triton's statistics (REST and gRPC): every ready model, one model's versions, or one."""
    models: list[LoadedModel]
    if not name:
        models = repository.ready_models()
    elif not version:
        models = list(repository.entry(name).versions.values())
        if not models:
            raise ModelNotReady(f"model '{name}' is not loaded")
    else:
        if not version.isdigit():
            raise ModelNotFound(f"unknown version '{version}' of model '{name}'")
        models = [repository.get(name, version)]
    return {"model_stats": [m.stats.as_triton() for m in models]}


async def stats_everywhere(
    services: Services, name: str | None, version: str | None, *, local: bool = False
) -> dict:
    """`stats_body` of this worker, summed with every sibling's unless `local`."""
    body = stats_body(services.repository, name, version)
    if local or services.siblings is None:
        return body
    path = "/v2/models" + (f"/{name}" if name else "") + (f"/versions/{version}" if version else "")
    return await gather_stats(services, path + "/stats", body)


async def _stats(
    request: Request, services: Services, name: str | None, version: str | None
) -> Response:
    local = _from_sibling(request, services)
    return json_response(await stats_everywhere(services, name, version, local=local))


@get("/v2/models/stats")
async def all_stats(request: Request, services: ServicesDep) -> Response:
    return await _stats(request, services, None, None)


@get("/v2/models/{model_name:str}/stats")
async def model_stats(
    request: Request, services: ServicesDep, model_name: FromPath[str]
) -> Response:
    return await _stats(request, services, model_name, None)


@get("/v2/models/{model_name:str}/versions/{model_version:str}/stats")
async def model_version_stats(
    request: Request, services: ServicesDep, model_name: FromPath[str], model_version: FromPath[str]
) -> Response:
    return await _stats(request, services, model_name, model_version)


@get("/metrics", sync_to_thread=False)
def metrics(services: ServicesDep) -> Response:
    return Response(content=services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


V2_REPOSITORY_ROUTES = [
    repository_index,
    repository_load,
    repository_unload,
    all_stats,
    model_stats,
    model_version_stats,
    metrics,
]
