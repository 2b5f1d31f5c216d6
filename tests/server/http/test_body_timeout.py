"""A body that does not arrive within `body_timeout_s` is answered 408 and its connection
closed; before, a client that announced a body and stalled held a connection, an admission slot
and a task until it gave up (found by a slow-body probe: no answer in 120 s)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request

import pytest

from server.errors import RequestTimeout
from server.http.body import BodyReads
from tests.server.http.conftest import BODY_TIMEOUT_S


class _Stalled:
    """A request whose body arrives when `arrive` is set."""

    headers: dict[str, str] = {}  # no Content-Encoding

    def __init__(self) -> None:
        self.arrive = asyncio.Event()

    async def body(self) -> bytes:
        await self.arrive.wait()
        return b"{}"


def test_reads_past_the_limit_end_and_others_do_not():
    async def main() -> None:
        reads = BodyReads(timeout_s=5.0)
        slow, fast, other = _Stalled(), _Stalled(), _Stalled()
        t_slow = asyncio.create_task(reads.read(slow))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        t_fast = asyncio.create_task(reads.read(fast))  # type: ignore[arg-type]
        t_other = asyncio.create_task(reads.read(other))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        start = time.monotonic()
        assert reads.sweep(start + 1.0) == 0  # nothing is late yet
        fast.arrive.set()
        assert await t_fast == b"{}"
        assert reads.sweep(start + 6.0) == 2  # the slow read and the other one
        with pytest.raises(RequestTimeout, match="within 5 s"):
            await t_slow
        with pytest.raises(RequestTimeout):
            await t_other
        assert reads.sweep(start + 60.0) == 0  # every entry is gone

        # a cancel that is not the sweep's stays a cancel (a client that left, a shutdown)
        gone = _Stalled()
        t_gone = asyncio.create_task(reads.read(gone))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        t_gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t_gone

    asyncio.run(main())


@pytest.mark.parametrize("path", ["/v2/models/mlp/infer", "/v1/search", "/v2/repository/index"])
def test_a_stalled_body_is_408_and_the_connection_closes(timeouts_server, path):
    s = socket.create_connection(("127.0.0.1", timeouts_server.port))
    s.settimeout(15)
    t0 = time.monotonic()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    s.sendall(f"{head}Content-Length: 100\r\n\r\n{{".encode())
    # meanwhile the server answers others
    body = {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 64], "data": [0.5] * 64}]
    }
    req = urllib.request.Request(
        timeouts_server.base + "/v2/models/mlp/infer",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    answer = b""
    while b"request_timeout" not in answer:
        chunk = s.recv(4096)
        assert chunk, f"closed without an answer: {answer!r}"
        answer += chunk
    waited = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"body_timeout_s" in answer
    assert BODY_TIMEOUT_S - 0.1 < waited < BODY_TIMEOUT_S + 8, waited  # give or take the sweep
    assert s.recv(100) == b""  # and the connection is closed
    s.close()
