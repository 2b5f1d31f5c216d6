"""The Litestar application: routes, the one error mapping, and a lifespan that builds the model
repository (kept on `app.state`), loads it, and drains it on shutdown."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.openapi import OpenAPIConfig

from server import __version__
from server.metrics import Metrics
from server.pipelines.loader import PipelineLoader
from server.pipelines.registry import PipelineRegistry
from server.engine.repository import ModelRepository, PlatformLoader
from server.http.responses import exception_handlers
from server.settings import Settings
from server.http.v1 import V1_ROUTES
from server.http.v2 import V2_ROUTES

__all__ = ["create_app"]

log = logging.getLogger("shopserve.app")


def create_app(
    settings: Settings,
    *,
    platform_loaders: dict[str, PlatformLoader] | None = None,
    extra_routes: list | None = None,
) -> Litestar:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        repo = ModelRepository(
            settings.repository_path,
            metrics=metrics,
            device_setting=settings.device,
            platform_loaders={"pipeline": PipelineLoader(), **(platform_loaders or {})},
        )
        repo.graceful_timeout_s = settings.graceful_timeout_s
        app.state.repository = repo
        app.state.pipelines = PipelineRegistry(repo, dict(settings.pipeline_models))
        if settings.model_control_mode == "explicit":
            await repo.load_all(list(settings.load_models))
        else:
            await repo.load_all()
        broken = [r for r in repo.index() if r["state"] != "READY"]
        for r in broken:
            log.error("model %s %s not ready: %s", r["name"], r["version"], r["reason"])
        app.state.started = True
        log.info(
            "serving %d model(s) from %s",
            len(repo.ready_models()),
            settings.repository_path,
        )
        try:
            yield
        finally:
            app.state.draining = True
            await repo.close()
            log.info("drained")

    return _build(settings, metrics, lifespan, extra_routes)


def _build(settings: Settings, metrics: Metrics, lifespan, extra_routes) -> Litestar:  # type: ignore[no-untyped-def]
    from litestar.datastructures import State

    return Litestar(
        route_handlers=[*V2_ROUTES, *V1_ROUTES, *(extra_routes or [])],
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="shopserve", version=__version__, path="/docs"),
        state=State(
            {"settings": settings, "metrics": metrics, "started": False, "draining": False}
        ),
    )
