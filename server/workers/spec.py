"""What the supervisor hands a worker (one JSON document in its environment), and the layout of
the run's private directory that the workers share: Prometheus' multiprocess files, the worker
sockets that siblings call, the cache of ONNX models whose weights are memory-mapped, and the
models loaded through the explicit API (so that a restarted worker loads the same ones)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import msgspec

from server.settings import Settings

__all__ = ["ENV", "EXIT_NOT_STARTED", "RunDir", "WorkerSpec", "decode_spec", "encode_spec"]

ENV = "SHOPSERVE_WORKER_SPEC"
# a worker whose app never started (a repository or port problem) exits with this; the
# supervisor stops instead of restarting it when it was the first start
EXIT_NOT_STARTED = 3
SUN_PATH_MAX = 108  # sizeof(sockaddr_un.sun_path) on Linux, the terminating NUL included


class RunDir:
    """`<root>/metrics` (PROMETHEUS_MULTIPROC_DIR), `<root>/sockets/worker-<i>.sock`,
    `<root>/models` (ONNX models with external, memory-mapped weights), `<root>/explicit.json`.
    Created 0700 by the supervisor (only its user may call a worker's socket), removed at exit."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def make(cls, workers: int) -> RunDir:
        """A new run directory under the temporary directory ($TMPDIR), or under /tmp when the
        last worker's socket path there would pass the kernel's limit for Unix sockets (108
        bytes on Linux: a long $TMPDIR made every worker fail to bind)."""
        root = Path(tempfile.mkdtemp(prefix="shopserve-run-"))
        if len(os.fsencode(cls(root).socket_of(workers - 1))) >= SUN_PATH_MAX:
            root.rmdir()
            root = Path(tempfile.mkdtemp(prefix="shopserve-run-", dir="/tmp"))
        return cls(root).create()

    def socket_of(self, index: int) -> Path:
        """Worker `index`'s socket, as `server.http.siblings.Siblings.socket_path` names it."""
        return self.sockets / f"worker-{index}.sock"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def sockets(self) -> Path:
        return self.root / "sockets"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def explicit(self) -> Path:
        return self.root / "explicit.json"

    def create(self) -> RunDir:
        for d in (self.metrics, self.sockets, self.models):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        return self


class WorkerSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    settings: Settings
    index: int  # 0 .. workers - 1; a restarted worker keeps its index (and its socket path)
    workers: int
    run_dir: str
    # proves a call came from a sibling worker (the sockets sit in a 0700 directory too)
    sibling_token: str
    # the listening socket inherited from the supervisor ("shared"); -1: bind one with
    # SO_REUSEPORT ("reuseport")
    fd: int = -1
    supervisor_pid: int = 0  # a worker whose parent is not this (any more) exits at once


def encode_spec(spec: WorkerSpec) -> str:
    return msgspec.json.encode(spec).decode()


def decode_spec(text: str) -> WorkerSpec:
    return msgspec.json.decode(text, type=WorkerSpec)
