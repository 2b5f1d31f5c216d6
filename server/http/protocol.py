"""uvicorn's httptools protocol, with each response leaving in one write.

uvicorn writes the status line and headers, then the body, as two `transport.write` calls: two
segments per small response, and with Nagle on the client's side of a keep-alive connection a
small request can stall on a delayed ACK. Holding the header block until the first body chunk
makes every small response a single write (one segment). `100 Continue` is never held.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["OneWriteHttpToolsProtocol"]


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
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport))  # type: ignore[arg-type]
