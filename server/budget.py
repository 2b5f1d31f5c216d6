"""A /v1 request's latency budget: its id, an absolute deadline and the time each stage took.

The HTTP layer sets the budget (server/http/deadlines.py: the smallest of the body's `budget_ms`,
the `X-Request-Timeout-Ms` header and the endpoint's default); each pipeline stage gets what is
left, and model calls pass the same deadline on to the batcher."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from server.errors import DeadlineExceeded

__all__ = ["Budget", "server_timing"]


class Budget:
    def __init__(
        self, budget_ms: float, arrival_ns: int | None = None, request_id: str = ""
    ) -> None:
        self.request_id = request_id
        self.arrival_ns = time.monotonic_ns() if arrival_ns is None else arrival_ns
        self.budget_ms = budget_ms
        self.deadline_ns = self.arrival_ns + int(budget_ms * 1e6)
        self.stages: dict[str, int] = {}

    def left_ns(self) -> int:
        return self.deadline_ns - time.monotonic_ns()

    def check(self, stage: str) -> None:
        if self.left_ns() <= 0:
            raise DeadlineExceeded(
                f"latency budget of {self.budget_ms:g} ms spent before stage '{stage}'"
            )

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.monotonic_ns()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0) + time.monotonic_ns() - t0

    def server_timing(self) -> str:
        return server_timing({**self.stages, "total": time.monotonic_ns() - self.arrival_ns})


def server_timing(stages: dict[str, float]) -> str:
    """`Server-Timing` value from stage durations in ns."""
    return ", ".join(f"{k};dur={v / 1e6:.3f}" for k, v in stages.items())
