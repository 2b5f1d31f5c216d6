"""`shopserve serve` as a subprocess on a free loopback port: the command, and the wait until it
answers ready. The load test starts its own server with these (as do the end-to-end tests); like
the rest of loadtests it only talks HTTP to the server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["free_port", "serve_command", "wait_ready"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(
    repo: Path, port: int, extra_args: list[str] | None = None, grpc_port: int = 0
) -> list[str]:
    """`python -m server serve` over `repo` on 127.0.0.1:`port`; gRPC on `grpc_port`, none by
    default (the server's default, 8001, would be shared by every server a run starts)."""
    return [
        sys.executable,
        "-m",
        "server",
        "serve",
        "--model-repository",
        str(repo),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        *(extra_args or []),
    ]


def wait_ready(proc: subprocess.Popen, base: str, timeout_s: float, poll_s: float) -> bool:
    """True once `base`/v2/health/ready answers 200; False when `proc` exits first or
    `timeout_s` passes (the caller tells which by `proc.poll()`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(base + "/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(poll_s)
    return False
