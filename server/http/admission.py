"""Admission, before a body is read: a request is refused at once (429 with Retry-After) when
its target's queue is full or this worker already holds its bound of admitted requests or bytes,
and with 503 while the server drains. `shopserve_inflight_requests{worker, target}` counts what
is admitted and not yet answered (the autoscaling signal)."""

from __future__ import annotations

import os
from typing import Any

from server.errors import ModelNotReady, Overloaded
from server.metrics import Metrics
from server.settings import Settings

__all__ = ["Admission", "Ticket", "content_length"]


class Ticket:
    """One admitted request; leaving the `with` block releases it."""

    __slots__ = ("_admission", "_gauge", "_nbytes")

    def __init__(self, admission: Admission, gauge: Any, nbytes: int) -> None:
        self._admission, self._gauge, self._nbytes = admission, gauge, nbytes

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self._admission._release(self._gauge, self._nbytes)


class Admission:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.max_requests = settings.max_inflight_requests
        self.max_bytes = settings.max_inflight_bytes
        self.requests = 0
        self.bytes = 0
        self.draining = False
        self._metrics = metrics
        self._worker = str(os.getpid())
        self._gauges: dict[str, Any] = {}

    def admit(self, target: str, nbytes: int, queue_full: bool = False) -> Ticket:
        """Admit a request of `nbytes` (its Content-Length) for `target` (a model or an
        endpoint), or raise 429/503 now."""
        if self.draining:
            raise ModelNotReady("the server is shutting down", headers={"Connection": "close"})
        if queue_full:
            raise Overloaded(f"{target}: queue is full", retry_after_s=1)
        if self.requests >= self.max_requests or self.bytes + nbytes > self.max_bytes:
            raise Overloaded(
                f"this worker holds {self.requests} requests ({self.bytes} bytes) in flight, "
                f"its bound ({self.max_requests} requests, {self.max_bytes} bytes)",
                retry_after_s=1,
            )
        gauge = self._gauges.get(target)
        if gauge is None:
            gauge = self._metrics.inflight.labels(self._worker, target)
            self._gauges[target] = gauge
        self.requests += 1
        self.bytes += nbytes
        gauge.inc()
        return Ticket(self, gauge, nbytes)

    def _release(self, gauge: Any, nbytes: int) -> None:
        self.requests -= 1
        self.bytes -= nbytes
        gauge.dec()


def content_length(headers: Any) -> int:
    try:
        return max(0, int(headers.get("content-length") or 0))
    except ValueError:
        return 0
