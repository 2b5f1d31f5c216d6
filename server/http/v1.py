"""The shop endpoints. Each decodes its Struct (a bad field is a 400 naming its `$.path`), sets
the request's budget, runs its pipeline and reports every stage in `Server-Timing`. An endpoint
answers with the pipeline named after it, except /v1/score, which picks one by `task`.
`GET /v1/pipelines` lists the pipelines, their state and the model versions (and gates) they use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, get, post
from litestar.types import ASGIApp

from server.budget import Budget
from server.errors import BadRequest, DeadlineExceeded, ShopserveError, bad_request_from_decode
from server.http.admission import content_length
from server.http.deadlines import TIMEOUT_HEADER, v1_budget
from server.http.deps import Services, ServicesDep
from server.http.disconnect import until_disconnect
from server.http.responses import RawResponse, request_id_of
from server.pipelines.base import ModelSource
from server.pipelines.registry import PipelineEntry, PipelineRegistry
from server.schemas.v1 import (
    AnswerRequest,
    ClassifyRequest,
    ForecastRequest,
    PipelineModel,
    PipelinesResponse,
    PipelineStatus,
    RecommendRequest,
    ScoreRequest,
    SearchRequest,
)

__all__ = ["V1_ROUTES"]

T = TypeVar("T")
_encoder = msgspec.json.Encoder()
_decoders: dict[type, msgspec.json.Decoder] = {
    t: msgspec.json.Decoder(t)
    for t in (
        ScoreRequest,
        ClassifyRequest,
        SearchRequest,
        RecommendRequest,
        AnswerRequest,
        ForecastRequest,
    )
}


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return _decoders[kind].decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise bad_request_from_decode(exc) from None


def _respond(obj: Any, budget: Budget) -> RawResponse:
    return RawResponse(
        _encoder.encode(obj),
        "application/json",
        {"Server-Timing": budget.server_timing(), "X-Request-Id": budget.request_id},
    )


# /v1/score's tasks: (pipeline folder, pipeline kind, the request field the task reads)
SCORE_TASKS = {
    "purchase_intent": ("score", "score", "session"),
    "cancellation_risk": ("score_cancellation", "order_score", "order_line"),
}
SCORE_FIELDS = ("session", "order_line")
Route = Callable[[Any], tuple[str, str]]  # a decoded request -> (pipeline name, pipeline kind)


def _score_route(req: ScoreRequest) -> tuple[str, str]:
    """The pipeline of the request's task; the other task's field is a 400 naming it."""
    name, kind, field = SCORE_TASKS[req.task]
    for other in SCORE_FIELDS:
        if other != field and getattr(req, other) is not None:
            raise BadRequest(f"$.{other}: not a field of task '{req.task}' (it reads `{field}`)")
    if getattr(req, field) is None:
        raise BadRequest(f"$.{field}: required for task '{req.task}'")
    return name, kind


def _queue_full(pipelines: PipelineRegistry, names: tuple[str, ...]) -> bool:
    """Refused before the body is read only when every served pipeline the endpoint may pick is
    full (a task is in the body); a request for one full pipeline meets its queue's 429."""
    served = [n for n in names if n in pipelines.entries]
    return bool(served) and all(pipelines.overloaded(n) for n in served)


async def _run(
    request: Request, services: Services, endpoint: str, kind: type, route: Route | None
) -> RawResponse:
    """One shop request: admit, decode, budget, the endpoint's pipeline, encode."""
    arrival = time.monotonic_ns()
    names = tuple(n for n, _, _ in SCORE_TASKS.values()) if route else (endpoint,)
    full = _queue_full(services.pipelines, names)
    with services.admission.admit(f"/v1/{endpoint}", content_length(request.headers), full):
        return await _admitted(request, services, endpoint, kind, route, arrival)


async def _admitted(
    request: Request,
    services: Services,
    endpoint: str,
    kind: type,
    route: Route | None,
    arrival: int,
) -> RawResponse:
    pipelines, settings = services.pipelines, services.settings
    req: Any = _decode(await services.bodies.read(request), kind)
    name, pipeline_kind = route(req) if route else (endpoint, endpoint)
    budget = v1_budget(
        req.budget_ms,
        request.headers.get(TIMEOUT_HEADER),
        settings.budgets_ms[endpoint],
        arrival,
        request_id_of(request),
    )
    pipeline = pipelines.get(name, pipeline_kind)
    answer = await until_disconnect(request, _within(pipeline.run(req, budget), budget))
    warnings = pipelines.warnings_for(answer.model_versions)
    if warnings:  # every answer that used a regressed or preview model says so
        answer = msgspec.structs.replace(answer, warnings=warnings)
    return _respond(answer, budget)


async def _within(work: Awaitable[T], budget: Budget) -> T:
    """`work`, answered 504 when the budget runs out (at its next await: CPU stages can't be
    interrupted, and each stage checks the budget before it starts)."""
    try:
        async with asyncio.timeout(max(0.0, budget.left_ns() / 1e9)):
            return await work
    except TimeoutError:
        raise DeadlineExceeded(f"latency budget of {budget.budget_ms:g} ms spent") from None
    except DeadlineExceeded as exc:
        if budget.left_ns() > 0:  # a model's own, shorter deadline
            raise
        # the budget's deadline, reached first in a model's queue (the same instant as the
        # timeout above, so either may fire): one cause, one message
        raise DeadlineExceeded(f"latency budget of {budget.budget_ms:g} ms spent ({exc})") from None


def _endpoint(endpoint: str, kind: type, route: Route | None = None) -> Any:
    """The POST route of one shop endpoint (`route`: how a request picks its pipeline)."""

    @post(f"/v1/{endpoint}", status_code=200, name=endpoint)
    async def handler(request: Request, services: ServicesDep) -> ASGIApp:
        return await _run(request, services, endpoint, kind, route)

    return handler


SHOP_ROUTES = [
    _endpoint("score", ScoreRequest, _score_route),
    _endpoint("classify", ClassifyRequest),
    _endpoint("search", SearchRequest),
    _endpoint("recommend", RecommendRequest),
    _endpoint("answer", AnswerRequest),
    _endpoint("forecast", ForecastRequest),
]


def _model_row(models: ModelSource, name: str) -> PipelineModel:
    try:
        model = models.get_model(name)
    except ShopserveError:
        return PipelineModel(name, "", "missing")
    card = getattr(model, "gate", None)  # the engine's models carry their card's gate
    gate = "none" if card is None else "passed" if card.passed else "failed"
    return PipelineModel(name, str(model.version), gate)


def _status(entry: PipelineEntry, models: ModelSource) -> PipelineStatus:
    return PipelineStatus(
        name=entry.name,
        kind=entry.kind,
        version="" if entry.version is None else str(entry.version),
        state=entry.state,
        reason=entry.reason,
        models=[_model_row(models, m) for m in entry.models],
    )


@get("/v1/pipelines", sync_to_thread=False)
def list_pipelines(services: ServicesDep) -> Response:
    """The models are looked up where the pipelines get them (the engine, or the `models` given
    to `create_app`), so a row never contradicts the pipeline it belongs to."""
    pipelines = services.pipelines
    rows = [_status(e, pipelines.models) for _, e in sorted(pipelines.entries.items())]
    return Response(content=_encoder.encode(PipelinesResponse(rows)), media_type="application/json")


V1_ROUTES = [*SHOP_ROUTES, list_pipelines]
