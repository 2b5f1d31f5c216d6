"""One cancellation mechanism for V1 and V2: after the body is read, a watcher waits for the
client's `http.disconnect` and cancels the handler's task. The cancel reaches whatever the handler
awaits (a queued envelope's future, a pipeline stage), so a request nobody waits for never runs;
the handler answers 499, which nobody reads but the metrics count.

The watcher starts only once the work has taken `WATCH_AFTER_S` (2 ms): most answers are sent
before then, and a watcher task per request (created, run, cancelled, run again) was a visible
share of a small model's CPU per request (issue 11). A client that leaves in the first 2 ms costs
at most that much wasted work; one whose request waits longer is still never run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from litestar import Request

from server.errors import ClientDisconnected

__all__ = ["until_disconnect"]

T = TypeVar("T")
WATCH_AFTER_S = 0.002


async def _next_message(request: Request) -> Any:
    return await request.receive()


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`; raise ClientDisconnected if the client goes away first."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    def on_message(t: asyncio.Task) -> None:
        nonlocal gone
        if t.cancelled() or t.exception() is not None:
            return
        if t.result().get("type") == "http.disconnect":
            gone = True
            task.cancel()

    loop = asyncio.get_running_loop()
    watcher: asyncio.Task | None = None

    def watch() -> None:
        nonlocal watcher
        watcher = loop.create_task(_next_message(request))
        watcher.add_done_callback(on_message)

    timer = loop.call_later(WATCH_AFTER_S, watch)
    try:
        return await work
    except asyncio.CancelledError:
        if gone:
            task.uncancel()
            raise ClientDisconnected("the client closed the connection") from None
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
