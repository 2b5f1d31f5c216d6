"""The shop endpoints. Each decodes its Struct (a bad field is a 400 naming its `$.path`), sets
the request's budget, runs its pipeline and reports every stage in `Server-Timing`."""

from __future__ import annotations

import time
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, post

from server.budget import Budget, budget_from
from server.errors import bad_request_from_decode
from server.pipelines.registry import PipelineRegistry
from server.http.responses import request_id_of
from server.schemas.v1 import (
    ClassifyRequest,
    ClassifyResponse,
    ClassifyResult,
    Contribution,
    Item,
    RecommendFilters,
    RecommendRequest,
    RecommendResponse,
    ScoreRequest,
    ScoreResponse,
    SearchFilters,
    SearchRequest,
    SearchResponse,
)

__all__ = ["V1_ROUTES"]

T = TypeVar("T")
_encoder = msgspec.json.Encoder()
_decoders: dict[type, msgspec.json.Decoder] = {
    t: msgspec.json.Decoder(t)
    for t in (ScoreRequest, ClassifyRequest, SearchRequest, RecommendRequest)
}


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return _decoders[kind].decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise bad_request_from_decode(exc) from None


def _registry(request: Request) -> PipelineRegistry:
    return request.app.state.pipelines


def _budget(request: Request, body_ms: int | None, endpoint: str, arrival: int) -> Budget:
    default = request.app.state.settings.budgets_ms[endpoint]
    return budget_from(body_ms, request.headers.get("x-request-timeout-ms"), default, arrival)


def _respond(request: Request, obj: Any, budget: Budget) -> Response:
    return Response(
        content=_encoder.encode(obj),
        media_type="application/json",
        headers={"Server-Timing": budget.server_timing(), "X-Request-Id": request_id_of(request)},
    )


@post("/v1/score", status_code=200)
async def score(request: Request) -> Response:
    arrival = time.monotonic_ns()
    req = _decode(await request.body(), ScoreRequest)
    budget = _budget(request, req.budget_ms, "score", arrival)
    pipeline = _registry(request).score()
    result = await pipeline.score(msgspec.structs.asdict(req.session), budget)
    resp = ScoreResponse(
        probability=result.probability,
        label=result.label,
        threshold=pipeline.threshold,
        base=result.base,
        explanation=[Contribution(f, c) for f, c in result.explanation],
        model_versions={pipeline.model.name: str(result.version)},
    )
    return _respond(request, resp, budget)


@post("/v1/classify", status_code=200)
async def classify(request: Request) -> Response:
    arrival = time.monotonic_ns()
    req = _decode(await request.body(), ClassifyRequest)
    budget = _budget(request, req.budget_ms, "classify", arrival)
    pipeline = _registry(request).classify(req.task)
    results = await pipeline.classify(list(req.texts), budget)
    resp = ClassifyResponse(
        results=[ClassifyResult(r.label, r.scores) for r in results],
        model_versions={pipeline.model.name: str(pipeline.model.version)},
    )
    return _respond(request, resp, budget)


def _items(rows: list[tuple[str, str, float, float]]) -> list[Item]:
    return [Item(item_id=i, title=t, price=p, score=s) for i, t, p, s in rows]


@post("/v1/search", status_code=200)
async def search(request: Request) -> Response:
    arrival = time.monotonic_ns()
    req = _decode(await request.body(), SearchRequest)
    budget = _budget(request, req.budget_ms, "search", arrival)
    f = req.filters or SearchFilters()
    rows, versions = (
        await _registry(request).search().search(req.query, req.k, f.price_min, f.price_max, budget)
    )
    return _respond(
        request, SearchResponse(items=_items(rows), degraded=False, model_versions=versions), budget
    )


@post("/v1/recommend", status_code=200)
async def recommend(request: Request) -> Response:
    arrival = time.monotonic_ns()
    req = _decode(await request.body(), RecommendRequest)
    budget = _budget(request, req.budget_ms, "recommend", arrival)
    f = req.filters or RecommendFilters()
    pipeline = _registry(request).recommend()
    rec = await pipeline.recommend(
        list(req.history), req.user_id, req.k, f.price_min, f.price_max, f.exclude_history, budget
    )
    resp = RecommendResponse(
        items=_items(rec.items),
        degraded=rec.degraded,
        ignored_items=rec.ignored,
        model_versions=rec.versions,
    )
    return _respond(request, resp, budget)


V1_ROUTES = [score, classify, search, recommend]
