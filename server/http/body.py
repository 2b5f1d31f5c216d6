"""Reading a request's body: within `body_timeout_s`, and decompressed as its
`Content-Encoding` says.

A client that announces a body and then sends it slowly, or never, gets 408 instead of holding
its connection, its admission slot and a task forever (before, such a request hung until the
client gave up).

`Content-Encoding: gzip` or `deflate` bodies (tritonclient.http's `request_compression_algorithm`,
as Triton accepts them) are decompressed to at most `max_body_bytes` (a larger result is 413, so
a small compressed body cannot expand without bound); `Inference-Header-Content-Length` counts
the decompressed bytes, as Triton's does. Other encodings are 415.

The body deadline is a `LateSweep` (no timer per request): a late read's task is cancelled, and
the cancel becomes the 408."""

from __future__ import annotations

import asyncio
import zlib

from litestar import Request

from server.errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from server.http.sweep import LateSweep

__all__ = ["BodyReads"]

# zlib's window bits: gzip's header and trailer; deflate as RFC 9110 defines it (the zlib
# format, which tritonclient sends), raw deflate streams accepted as some clients send them
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_IN_THREAD_BYTES = 256 * 1024  # larger compressed bodies are inflated off the event loop


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """`body` decompressed to at most `limit` bytes (gzip: every member, as `gzip -d` does)."""
    bits = _WBITS[encoding]
    zlib_header = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
    if encoding == "deflate" and not zlib_header:
        bits = -zlib.MAX_WBITS  # raw deflate
    out = bytearray()
    data = body
    while data:
        d = zlib.decompressobj(bits)
        try:
            out += d.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise BadRequest(
                f"request body: not valid {encoding} data (Content-Encoding: {encoding}): {exc}"
            ) from None
        if len(out) > limit:
            raise PayloadTooLarge(
                f"request body: over max_body_bytes ({limit}) once decompressed ({encoding})"
            )
        if not d.eof:
            raise BadRequest(f"request body: truncated {encoding} data (Content-Encoding)")
        data = d.unused_data
        if data and bits != _WBITS["gzip"]:
            raise BadRequest(f"request body: data after the end of the {encoding} stream")
    return bytes(out)


class BodyReads:
    def __init__(self, timeout_s: float, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._reads: LateSweep[asyncio.Task] = LateSweep(timeout_s, self._expire)
        self._expired: set[asyncio.Task] = set()

    async def read(self, request: Request) -> bytes:
        """The whole body, decompressed; RequestTimeout once it has taken longer than the
        limit."""
        body = await self._receive(request)
        encoding = request.headers.get("content-encoding")
        if encoding is None:
            return body
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding not in _WBITS:
            raise UnsupportedMediaType(
                f"Content-Encoding: {encoding!r} is not supported (gzip, deflate or identity)"
            )
        if len(body) <= _IN_THREAD_BYTES:
            return _inflate(body, encoding, self.max_bytes)
        return await asyncio.to_thread(_inflate, body, encoding, self.max_bytes)

    async def _receive(self, request: Request) -> bytes:
        task = asyncio.current_task()
        assert task is not None
        self._reads.wait(task)
        try:
            return await request.body()
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            task.uncancel()
            raise RequestTimeout(
                f"request body not received within {self.timeout_s:g} s (body_timeout_s)"
            ) from None
        finally:
            self._reads.done(task)
            self._expired.discard(task)

    def _expire(self, task: asyncio.Task) -> None:
        self._expired.add(task)
        task.cancel()

    def sweep(self, now: float) -> int:
        """Cancel the reads started more than `timeout_s` before `now`; how many."""
        return self._reads.sweep(now)
