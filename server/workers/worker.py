"""One worker of several (`python -m server.workers.worker`, started by the supervisor with its
WorkerSpec in the environment): the same app as a single server, on the shared port and on its
own Unix socket (for its siblings), with Prometheus in multiprocess mode, intra-op threads from
its share of the cores and CPU model weights mapped from the run's directory. It dies with its
supervisor (PR_SET_PDEATHSIG), and leaves SIGINT to it."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import msgspec

from server.app import create_app
from server.http.siblings import Siblings, read_loaded
from server.logs import configure_logging
from server.main import DrainingServer, uvicorn_config
from server.runtime.placement import Placement
from server.settings import available_cores
from server.workers.sockets import unix_listener
from server.workers.spec import ENV, EXIT_NOT_STARTED, RunDir, WorkerSpec, decode_spec

__all__ = ["main", "serve"]

log = logging.getLogger("shopserve.worker")

_PR_SET_PDEATHSIG = 1


def _die_with(supervisor_pid: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor_pid:  # it died before the line above
        raise SystemExit(EXIT_NOT_STARTED)


def _public_socket(spec: WorkerSpec) -> socket.socket:
    if spec.fd >= 0:
        return socket.socket(fileno=spec.fd)
    s = spec.settings
    # bound, not listening: uvicorn listens once the app has started, and only then does the
    # kernel send this worker connections (a listening socket would queue them during start-up)
    sock = socket.socket(socket.AF_INET6 if ":" in s.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((s.host, s.port))
    return sock


def serve(spec: WorkerSpec) -> int:
    settings = spec.settings
    run = RunDir(Path(spec.run_dir))
    if settings.model_control_mode == "explicit":
        loaded = read_loaded(run.explicit)  # what the explicit API left loaded so far
        if loaded is not None:
            settings = msgspec.structs.replace(settings, load_models=loaded)
    siblings = Siblings(spec.index, spec.workers, run.sockets, spec.sibling_token, run.explicit)
    placement = Placement(workers=spec.workers, cores=available_cores(), weights_dir=run.models)
    app = create_app(
        settings,
        serve_grpc=True,
        placement=placement,
        siblings=siblings,
        metrics_dir=run.metrics,
    )
    own = siblings.socket_path(spec.index)
    sockets = [_public_socket(spec), unix_listener(own)]
    server = DrainingServer(uvicorn_config(app, settings))
    server.signals = (signal.SIGTERM,)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
        with contextlib.suppress(OSError):
            own.unlink()
    return 0 if server.started else EXIT_NOT_STARTED


def main() -> int:
    spec = decode_spec(os.environ[ENV])
    _die_with(spec.supervisor_pid or os.getppid())
    configure_logging(spec.settings.log_level, spec.settings.log_format)
    log.info("worker %d of %d starting (pid %d)", spec.index, spec.workers, os.getpid())
    return serve(spec)


if __name__ == "__main__":
    sys.exit(main())
