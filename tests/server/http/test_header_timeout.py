"""A connection waiting for a request's headers longer than `header_timeout_s` is closed: a new
connection that sends nothing, half a request, or half of the next request on a keep-alive
connection (uvicorn waited for them without limit: still open after 80 s). Once the headers are
in, the deadline is off: a slow body is the body timeout's (test_body_timeout.py)."""

from __future__ import annotations

import json
import socket
import time

from server.http.protocol import header_deadlines
from tests.server.http.conftest import HEADER_TIMEOUT_S


class _Closing:
    class transport:  # noqa: N801 (stands in for the protocol's transport attribute)
        closed = 0

        @classmethod
        def close(cls) -> None:
            cls.closed += 1


def test_the_sweep_closes_only_the_late():
    d = header_deadlines(timeout_s=10.0)
    late, fresh = _Closing(), _Closing()
    d.waiting[late] = 100.0
    d.waiting[fresh] = 105.0
    assert d.sweep(108.0) == 0
    assert d.sweep(112.0) == 1 and late.transport.closed == 1 and list(d.waiting) == [fresh]
    d.done(fresh)
    assert d.sweep(1e9) == 0


def _connect(server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(15)
    return s


def _closed_after(s: socket.socket, t0: float) -> float:
    assert s.recv(100) == b""  # closed, and nothing answered
    return time.monotonic() - t0


def test_connections_waiting_for_headers_are_closed(timeouts_server):
    t0 = time.monotonic()
    idle = _connect(timeouts_server)
    partial = _connect(timeouts_server)
    partial.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\n")
    kept = _connect(timeouts_server)
    kept.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    assert kept.recv(200).startswith(b"HTTP/1.1 200")
    kept.sendall(b"GET /v2/health/live HTTP/1.1\r\n")  # the next request, half sent
    for s in (idle, partial, kept):
        assert HEADER_TIMEOUT_S - 0.1 < _closed_after(s, t0) < HEADER_TIMEOUT_S + 9
        s.close()


def test_once_the_headers_are_in_a_slow_request_is_not_cut(timeouts_server):
    # the repository index: a POST with a body and no model deadline (an infer request's own
    # deadline counts from its arrival, and would answer 504 to so slow a body)
    body = json.dumps({"ready": True}).encode()
    s = _connect(timeouts_server)
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
