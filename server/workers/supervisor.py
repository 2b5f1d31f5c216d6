"""The supervisor of `shopserve serve --workers N`: holds the port, starts N workers, restarts one
that dies (the others keep serving), and on SIGTERM or SIGINT has every worker drain, then exits
0. It never imports the app, ONNX Runtime or Numba: a small process that only watches.

Its private run directory (RunDir: 0700, removed at exit) holds Prometheus' multiprocess files
(PROMETHEUS_MULTIPROC_DIR, set for the workers only), the workers' Unix sockets, the models with
memory-mapped weights, and the explicit API's list of loaded models."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import msgspec
from prometheus_client import multiprocess

from server.settings import Settings
from server.workers.sockets import guard_socket, listen_socket
from server.workers.spec import ENV, EXIT_NOT_STARTED, RunDir, WorkerSpec, encode_spec

__all__ = ["supervise"]

log = logging.getLogger("shopserve.supervisor")

_POLL_S = 0.1
_STABLE_S = 10.0  # a worker that lived this long restarts at once; quicker deaths back off
_MAX_BACKOFF_S = 30.0
_KILL_AFTER_S = 15.0  # beyond graceful_timeout_s: a worker still alive then is killed


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    starts: int = 0
    quick_deaths: int = 0  # in a row
    restart_at: float = 0.0


class Supervisor:
    def __init__(self, settings: Settings, run: RunDir, listener: socket.socket | None) -> None:
        self.settings = settings
        self.run_dir = run
        self.listener = listener
        self.count = settings.worker_count
        self.token = secrets.token_hex(16)
        self.workers = [_Worker(i) for i in range(self.count)]
        self.stop_requested = False
        self.force = False

    # -- signals -----------------------------------------------------------------------------------

    def _on_signal(self, sig: int, frame: object) -> None:
        if self.stop_requested:
            self.force = True
        self.stop_requested = True

    # -- workers -----------------------------------------------------------------------------------

    def _spawn(self, w: _Worker) -> None:
        fd = self.listener.fileno() if self.listener is not None else -1
        spec = WorkerSpec(
            settings=self.settings,
            index=w.index,
            workers=self.count,
            run_dir=str(self.run_dir.root),
            sibling_token=self.token,
            fd=fd,
            supervisor_pid=os.getpid(),
        )
        env = {
            **os.environ,
            ENV: encode_spec(spec),
            "PROMETHEUS_MULTIPROC_DIR": str(self.run_dir.metrics),
        }
        w.proc = subprocess.Popen(
            [sys.executable, "-m", "server.workers.worker"],
            env=env,
            pass_fds=(fd,) if fd >= 0 else (),
        )
        w.started_at = time.monotonic()
        w.starts += 1
        log.info("worker %d started (pid %d)", w.index, w.proc.pid)

    def _exited(self, w: _Worker, rc: int) -> bool:
        """A worker ended while serving: schedule its restart; False when the server must stop
        (a first start that failed would fail again: a port or repository problem)."""
        assert w.proc is not None
        pid = w.proc.pid
        multiprocess.mark_process_dead(pid, str(self.run_dir.metrics))
        w.proc = None
        how = f"signal {-rc}" if rc < 0 else f"code {rc}"
        if rc == EXIT_NOT_STARTED and w.starts == 1:
            log.error("worker %d (pid %d) could not start (%s): stopping", w.index, pid, how)
            return False
        lived = time.monotonic() - w.started_at
        w.quick_deaths = w.quick_deaths + 1 if lived < _STABLE_S else 0
        delay = min(_MAX_BACKOFF_S, 0.5 * 2 ** (w.quick_deaths - 1)) if w.quick_deaths else 0.0
        w.restart_at = time.monotonic() + delay
        log.warning(
            "worker %d (pid %d) exited with %s after %.1f s; restarting in %.1f s",
            w.index,
            pid,
            how,
            lived,
            delay,
        )
        return True

    def _watch(self) -> bool:
        """Until a stop is asked for; False when a worker could not start at all."""
        while not self.stop_requested:
            time.sleep(_POLL_S)
            for w in self.workers:
                if w.proc is None:
                    if time.monotonic() >= w.restart_at and not self.stop_requested:
                        self._spawn(w)
                    continue
                rc = w.proc.poll()
                if rc is not None and not self.stop_requested and not self._exited(w, rc):
                    return False
        return True

    def _drain(self) -> int:
        """SIGTERM to every worker; each finishes what it admitted within graceful_timeout_s.
        0 when every worker drained cleanly."""
        live = [w for w in self.workers if w.proc is not None]
        for w in live:
            assert w.proc is not None
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.graceful_timeout_s + _KILL_AFTER_S
        rcs = []
        for w in live:
            assert w.proc is not None
            while w.proc.poll() is None and time.monotonic() < deadline and not self.force:
                time.sleep(_POLL_S)
            if w.proc.poll() is None:
                log.error("worker %d (pid %d) did not drain: killed", w.index, w.proc.pid)
                w.proc.kill()
                w.proc.wait()
            rcs.append(w.proc.returncode)
        log.info("workers drained (exit codes %s)", rcs)
        return 0 if all(rc == 0 for rc in rcs) else 1

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for w in self.workers:
                self._spawn(w)
            ok = self._watch()
            rc = self._drain()
            return rc if ok else 1
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def _hold_ports(settings: Settings) -> tuple[socket.socket | None, list[socket.socket], Settings]:
    """The shared listener ("shared") and the guards (the port in "reuseport" mode, gRPC's), and
    the settings with the port actually bound (port 0: one picked now, the same for all)."""
    listener: socket.socket | None = None
    guards: list[socket.socket] = []
    try:
        if settings.listen == "shared":
            listener = listen_socket(settings.host, settings.port, reuseport=False)
            port = listener.getsockname()[1]
        else:
            guards.append(guard_socket(settings.host, settings.port))
            port = guards[0].getsockname()[1]
        if settings.grpc_port:
            guards.append(guard_socket(settings.host, settings.grpc_port))
    except OSError:
        for s in [*guards, *([listener] if listener else [])]:
            s.close()
        raise
    return listener, guards, msgspec.structs.replace(settings, port=port)


def supervise(settings: Settings) -> int:
    try:
        listener, guards, settings = _hold_ports(settings)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
        return 1
    run = RunDir.make(settings.worker_count)
    log.info(
        "supervisor (pid %d): %d workers on %s:%d (%s socket), run directory %s",
        os.getpid(),
        settings.worker_count,
        settings.host,
        settings.port,
        settings.listen,
        run.root,
    )
    try:
        return Supervisor(settings, run, listener).run()
    finally:
        for s in [*guards, *([listener] if listener else [])]:
            s.close()
        shutil.rmtree(run.root, ignore_errors=True)
