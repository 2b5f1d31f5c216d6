"""Reading a request's body within `body_timeout_s`. A client that announces a body and then
sends it slowly, or never, gets 408 instead of holding its connection, its admission slot and a
task forever (before, such a request hung until the client gave up).

No timer per request: a read registers its task and start time in a dict, and one task per
process (`run`, started with the app) ends the reads older than the limit once a second. A
per-request `asyncio.timeout` cost ~10 us and `loop.call_later` ~4 us of CPU (measured with
uvloop), against a dict insert and delete here; the limit is kept to within that second."""

from __future__ import annotations

import asyncio
import time

from litestar import Request

from server.errors import RequestTimeout

__all__ = ["BodyReads"]

SWEEP_S = 1.0


class BodyReads:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._since: dict[asyncio.Task, float] = {}  # reads in progress: task -> start
        self._expired: set[asyncio.Task] = set()

    async def read(self, request: Request) -> bytes:
        """The whole body, or RequestTimeout once it has taken longer than the limit."""
        task = asyncio.current_task()
        assert task is not None
        self._since[task] = time.monotonic()
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
            del self._since[task]
            self._expired.discard(task)

    def sweep(self, now: float) -> int:
        """Cancel the reads started more than `timeout_s` before `now`; how many."""
        late = [t for t, t0 in self._since.items() if now - t0 > self.timeout_s]
        for task in late:
            if task not in self._expired:
                self._expired.add(task)
                task.cancel()
        return len(late)

    async def run(self, period_s: float = SWEEP_S) -> None:
        while True:
            await asyncio.sleep(period_s)
            self.sweep(time.monotonic())
