"""A connection waiting for a request's headers longer than `header_timeout_s` is closed: a new
connection that sends nothing, half a request, or half of the next request on a keep-alive
connection (uvicorn waited for them without limit: still open after 80 s). Once the headers are
in, the deadline is off: a slow body is the body timeout's (test_body_timeout.py)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from server.http.protocol import HeaderDeadlines
from tests.e2e.serverproc import ServerProcess


class _Closing:
    class transport:  # noqa: N801 (stands in for the protocol's transport attribute)
        closed = 0

        @classmethod
        def close(cls) -> None:
            cls.closed += 1


def test_the_sweep_closes_only_the_late():
    d = HeaderDeadlines(timeout_s=10.0)
    late, fresh = _Closing(), _Closing()
    d.waiting[late] = 100.0
    d.waiting[fresh] = 105.0
    assert d.sweep(108.0) == 0
    assert d.sweep(112.0) == 1 and late.transport.closed == 1 and list(d.waiting) == [fresh]
    d.done(fresh)
    assert d.sweep(1e9) == 0


@pytest.fixture(scope="module")
def server(demo_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    cfg = tmp_path_factory.mktemp("cfg") / "settings.toml"
    cfg.write_text("header_timeout_s = 1\n")
    proc = ServerProcess(demo_repo, extra_args=["--config", str(cfg)])
    yield proc
    assert proc.stop() == 0


def _connect(server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(15)
    return s


def _closed_after(s: socket.socket, t0: float) -> float:
    assert s.recv(100) == b""  # closed, and nothing answered
    return time.monotonic() - t0


def test_connections_waiting_for_headers_are_closed(server):
    t0 = time.monotonic()
    idle = _connect(server)
    partial = _connect(server)
    partial.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\n")
    kept = _connect(server)
    kept.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    assert kept.recv(200).startswith(b"HTTP/1.1 200")
    kept.sendall(b"GET /v2/health/live HTTP/1.1\r\n")  # the next request, half sent
    for s in (idle, partial, kept):
        assert 0.9 < _closed_after(s, t0) < 10
        s.close()


def test_once_the_headers_are_in_a_slow_request_is_not_cut(server):
    # the repository index: a POST with a body and no model deadline (an infer request's own
    # deadline counts from its arrival, and would answer 504 to so slow a body)
    body = json.dumps({"ready": True}).encode()
    s = _connect(server)
    s.sendall(b"POST /v2/repository/index HTTP/1.1\r\n")
    time.sleep(0.4)  # headers in two parts, within the limit
    s.sendall(b"Host: x\r\nContent-Type: application/json\r\n")
    s.sendall(f"Content-Length: {len(body)}\r\n\r\n".encode())
    s.sendall(body[:4])
    time.sleep(2.5)  # the body takes longer than header_timeout_s: that limit no longer applies
    s.sendall(body[4:])
    answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b'"mlp"' in answer
    s.close()
