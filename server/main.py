"""`shopserve serve`: settings read once, then uvicorn (httptools + uvloop by default, measured in
docs/performance.md). SIGTERM: uvicorn stops accepting and finishes in-flight requests, then the
lifespan drains every model queue; the process exits 0. With `workers` > 1 this process becomes
the supervisor of that many worker processes (server/workers/), each running the same app."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn

from server.logs import configure_logging
from server.settings import Settings, load_settings

__all__ = ["DrainingServer", "run", "uvicorn_config"]

log = logging.getLogger("shopserve")


class DrainingServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown, so the process would end with 143;
    a drained server exits 0. A second signal forces the exit. A worker of several leaves SIGINT
    to its supervisor (a Ctrl-C reaches the whole process group; the supervisor sends SIGTERM)."""

    signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def handle(sig: int, frame: object) -> None:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True
            log.info("signal %d: draining", sig)

        previous = {s: signal.signal(s, handle) for s in self.signals}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def _open_admin(settings: Settings) -> bool:
    """Explicit model control on a non-loopback host with no token and no explicit consent."""
    if settings.model_control_mode != "explicit" or settings.admin_token:
        return False
    if settings.allow_open_admin:
        return False
    try:
        return not ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        return settings.host != "localhost"


def run(
    *,
    config_file: Path | None = None,
    model_repository: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    grpc_port: int | None = None,
    log_level: str | None = None,
    workers: int | str | None = None,
) -> int:
    settings = load_settings(
        config_file,
        model_repository=model_repository,
        host=host,
        port=port,
        grpc_port=grpc_port,
        log_level=log_level,
        workers=workers,
    )
    configure_logging(settings.log_level, settings.log_format)
    if not settings.repository_path.is_dir():
        log.error("model repository %s does not exist", settings.repository_path)
        return 2
    if _open_admin(settings):
        log.error(
            "refusing to serve model control on %s without an admin token: set admin_token "
            "(SHOPSERVE_ADMIN_TOKEN), listen on a loopback host, or set allow_open_admin = true",
            settings.host,
        )
        return 2
    if settings.worker_count > 1:
        from server.workers.supervisor import supervise

        return supervise(settings)
    from server.app import create_app  # here: a supervisor of workers never loads the app

    server = DrainingServer(uvicorn_config(create_app(settings, serve_grpc=True), settings))
    server.run()
    return 0 if server.started else 1


def uvicorn_config(app: Any, settings: Settings) -> uvicorn.Config:
    http: Any = settings.http
    if http == "httptools":
        from server.http.protocol import OneWriteHttpToolsProtocol, header_deadlines

        due = header_deadlines(settings.header_timeout_s)
        http = partial(OneWriteHttpToolsProtocol, headers_due=due)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=http,
        loop=settings.loop,
        lifespan="on",
        access_log=settings.access_log,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        server_header=False,
    )
