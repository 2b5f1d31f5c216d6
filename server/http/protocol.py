"""uvicorn's httptools protocol, with each response leaving in one write, and a deadline on
the headers of every request.

uvicorn writes the status line and headers, then the body, as two `transport.write` calls: two
segments per small response, and with Nagle on the client's side of a keep-alive connection a
small request can stall on a delayed ACK. Holding the header block until the first body chunk
makes every small response a single write (one segment). `100 Continue` is never held.

uvicorn waits for a request's headers without limit: a connection that sends nothing, or half a
request line, stays open for good (measured: still open after 80 s), so a few thousand of them
exhaust the server's file descriptors (slowloris). A connection waiting for headers (new, or
between keep-alive requests once uvicorn's own keep-alive timer is cancelled by the first bytes)
is closed when they take longer than `header_timeout_s` (Go's `ReadHeaderTimeout`, nginx's
`client_header_timeout`), by a `LateSweep` shared by the server's connections (`sweep.py`: no
timer per request).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.http.sweep import LateSweep

__all__ = ["OneWriteHttpToolsProtocol", "header_deadlines"]


def header_deadlines(timeout_s: float) -> LateSweep[asyncio.BaseProtocol]:
    """The connections waiting for a request's headers; one late is closed."""
    return LateSweep(timeout_s, lambda p: p.transport.close())  # type: ignore[attr-defined]


class _CoalescingTransport:
    """Delegates to the real transport; a response head is held and sent with the next write."""

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            data, self._held = self._held + bytes(data), None
            self._transport.write(data)
        elif data[:9] == b"HTTP/1.1 " and data[9:12] != b"100" and data[-4:] == b"\r\n\r\n":
            self._held = bytes(data)
        else:
            self._transport.write(data)

    def close(self) -> None:
        if self._held is not None:
            self._transport.write(self._held)
            self._held = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self, *args: Any, headers_due: LateSweep[asyncio.BaseProtocol], **kwargs: Any
    ) -> None:
        """`headers_due`: the server's `header_deadlines`, shared by its connections."""
        super().__init__(*args, **kwargs)
        self._headers_due = headers_due

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport))  # type: ignore[arg-type]
        self._headers_due.wait(self)

    def on_headers_complete(self) -> None:
        self._headers_due.done(self)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # no request in flight (a pipelined one has its headers already): the next one's are due
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._headers_due.wait(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_due.done(self)
        super().connection_lost(exc)
