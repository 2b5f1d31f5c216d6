"""The Litestar application: routes, the one error mapping, the app-scoped dependencies (given
through `Provide`, cached: injection does no per-request work), and a lifespan that loads the
models, then the pipelines over them, and drains everything on shutdown."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from server import __version__
from server.control import RepositoryPoller, expected_models
from server.engine.repository import ModelRepository
from server.grpc.server import GrpcServer
from server.http.admission import Admission
from server.http.body import BodyReads
from server.http.counting import ResponseCounter
from server.http.deps import Services
from server.http.responses import ERROR_RESPONSES, exception_handlers
from server.http.siblings import Siblings
from server.http.v1 import V1_ROUTES
from server.http.v2 import V2_ROUTES
from server.http.v2_repository import V2_REPOSITORY_ROUTES
from server.metrics import Metrics
from server.pipelines.base import ModelSource
from server.pipelines.cpu_work import configure_cpu_work
from server.pipelines.registry import PipelineRegistry
from server.runtime.placement import Placement
from server.settings import Settings, available_cores

__all__ = ["create_app"]

log = logging.getLogger("shopserve.app")


def create_app(
    settings: Settings,
    *,
    models: ModelSource | None = None,
    extra_routes: list | None = None,
    serve_grpc: bool = False,
    placement: Placement | None = None,
    siblings: Siblings | None = None,
    metrics_dir: Path | None = None,
) -> Litestar:
    """The app over `settings.model_repository`. `models` replaces the engine as the pipelines'
    model source (tests give a fake one, so /v1 runs without trained weights). `serve_grpc`: the
    lifespan also serves V2 gRPC on `settings.grpc_port` (0: not), on the same event loop;
    `shopserve serve` asks for it, in-process tests that talk gRPC do (the others never bind
    8001). A worker of several gives its `placement` (threads, shared weights), its `siblings`
    and the multiprocess `metrics_dir` (server/workers/worker.py)."""
    metrics = Metrics(metrics_dir)
    configure_cpu_work(settings.inline_cpu_us)
    repository = ModelRepository(
        settings.repository_path,
        metrics=metrics,
        device_setting=settings.device,
        graceful_timeout_s=settings.graceful_timeout_s,
        max_dynamic_dim=settings.limits.max_dynamic_dim,
        default_max_queue_size=settings.default_max_queue_size,
        placement=placement or Placement(workers=1, cores=available_cores()),
        inline_cpu_us=settings.inline_cpu_us,
    )
    pipelines = PipelineRegistry(settings.repository_path, models or repository)
    repository.listeners.append(pipelines.model_changed)

    poller = RepositoryPoller(repository, pipelines)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await _load(settings, repository, pipelines)
        if settings.model_control_mode == "poll":
            poller.remember()
            poller.start(settings.repository_poll_secs)
        try:
            if grpc_server is not None:
                await grpc_server.start()  # a taken port fails the start, as uvicorn's does
            app.state.started = True
            yield
        finally:
            admission.draining = True  # the one draining flag: admission and readiness read it
            if grpc_server is not None:
                await grpc_server.stop(settings.graceful_timeout_s)
            await poller.stop()
            await repository.close()
            log.info("drained")

    admission = Admission(settings, metrics)
    bodies = BodyReads(settings.body_timeout_s, settings.max_body_bytes)
    services = Services(settings, metrics, repository, pipelines, admission, bodies, siblings)
    grpc_server = (
        GrpcServer(services, reuse_port=siblings is not None)
        if serve_grpc and settings.grpc_port
        else None
    )
    routes = [*V2_ROUTES, *V2_REPOSITORY_ROUTES, *V1_ROUTES, *(extra_routes or [])]
    for handler in routes:  # the OpenAPI document shows the one error body every route sends
        handler.responses = {**ERROR_RESPONSES, **(handler.responses or {})}
    return Litestar(
        route_handlers=routes,
        dependencies={"services": Provide(lambda: services, use_cache=True, sync_to_thread=False)},
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        before_send=[ResponseCounter(metrics)],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="shopserve", version=__version__, path="/docs"),
        # the same objects on app.state, for tools and tests; handlers get them by injection
        state=State(
            {
                **{f.name: getattr(services, f.name) for f in fields(services)},
                "started": False,
                "grpc": grpc_server,
            }
        ),
    )


async def _load(
    settings: Settings, repository: ModelRepository, pipelines: PipelineRegistry
) -> None:
    await repository.load_all(expected_models(settings, repository.root))
    for r in repository.index():
        if r["state"] != "READY":
            log.error("model %s %s not ready: %s", r["name"], r["version"], r["reason"])
    await pipelines.load_all()
    log.info(
        "serving %d model(s) and %d pipeline(s) from %s",
        len(repository.ready_models()),
        len(pipelines.ready()),
        settings.repository_path,
    )
