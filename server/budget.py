"""A request's latency budget: an absolute deadline and the time each stage took.

The budget is the smallest of the request's `budget_ms`, header `X-Request-Timeout-Ms` and the
endpoint's default; each stage gets what is left, and model calls pass the deadline on to the
batcher."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from server.errors import BadRequest, DeadlineExceeded

__all__ = ["Budget", "budget_from", "server_timing", "timeout_header_ms"]


class Budget:
    def __init__(self, budget_ms: float, arrival_ns: int | None = None) -> None:
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


def timeout_header_ms(header: str) -> float:
    """`X-Request-Timeout-Ms` as a number of milliseconds >= 0, or a 400 naming the header."""
    try:
        ms = float(header)
    except ValueError:
        raise BadRequest(f"X-Request-Timeout-Ms: '{header}' is not a number") from None
    if not ms >= 0:
        raise BadRequest("X-Request-Timeout-Ms: must be >= 0")
    return ms


def budget_from(
    body_ms: int | None, header: str | None, default_ms: float, arrival_ns: int
) -> Budget:
    candidates = [default_ms]
    if body_ms is not None:
        candidates.append(body_ms)
    if header is not None:
        ms = timeout_header_ms(header)
        if ms == 0:  # a budget of nothing is a client error here; V2 answers it with a 504
            raise BadRequest("X-Request-Timeout-Ms: must be > 0")
        candidates.append(ms)
    return Budget(min(candidates), arrival_ns)
