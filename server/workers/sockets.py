"""The sockets of a multi-worker server.

"shared": the supervisor binds and listens once; every worker inherits the socket and accepts
from the one queue (gunicorn's and `uvicorn --workers`' way). "reuseport": each worker binds its
own socket with SO_REUSEPORT and the kernel hashes connections over them. In both modes the
supervisor holds the port first (a taken port fails the start, as with one worker): in
"reuseport" mode and for gRPC (whose workers always bind with SO_REUSEPORT, grpc having no way to
adopt a listening socket) by a bound, never listening, SO_REUSEPORT "guard" socket, which only
sockets of the same user that also set SO_REUSEPORT may join."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

__all__ = ["guard_socket", "listen_socket", "unix_listener"]

BACKLOG = 2048  # uvicorn's default


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bound(host: str, port: int, reuseport: bool) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def listen_socket(host: str, port: int, *, reuseport: bool) -> socket.socket:
    """A listening TCP socket on host:port."""
    sock = _bound(host, port, reuseport)
    sock.listen(BACKLOG)
    return sock


def guard_socket(host: str, port: int) -> socket.socket:
    """Hold host:port (SO_REUSEPORT, bound, not listening: it never receives a connection);
    port 0 picks a free port, read it from `getsockname()`."""
    return _bound(host, port, reuseport=True)


def unix_listener(path: Path) -> socket.socket:
    """A listening Unix socket at `path` (a stale one, left by a killed worker, is replaced)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock
