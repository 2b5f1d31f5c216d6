"""One timeout rule for V1 and V2. `X-Request-Timeout-Ms` must be a finite number >= 1 (400
otherwise, on both APIs); V2's `parameters.timeout` is in microseconds and 0 means "no override",
as in Triton. A request may only shorten the deadline its model or endpoint sets."""

from __future__ import annotations

import math
from typing import Any

from server.budget import Budget
from server.errors import BadRequest

__all__ = ["TIMEOUT_HEADER", "v1_budget", "v2_timeout_us"]

TIMEOUT_HEADER = "x-request-timeout-ms"
_MAX_MS = 3_600_000.0


def header_timeout_ms(value: str | None) -> float | None:
    """The header as milliseconds, or None when absent."""
    if value is None:
        return None
    try:
        ms = float(value)
    except ValueError:
        raise BadRequest(f"X-Request-Timeout-Ms: '{value[:32]}' is not a number") from None
    if not math.isfinite(ms) or not 1 <= ms <= _MAX_MS:
        raise BadRequest(f"X-Request-Timeout-Ms: must be a number of ms in [1, {_MAX_MS:g}]")
    return ms


def v2_timeout_us(parameters: dict[str, Any], header: str | None) -> int | None:
    """The smaller of `parameters.timeout` (us; 0 = none) and the header; None when neither."""
    given: list[int] = []
    t = parameters.get("timeout")
    if t is not None:
        if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t <= _MAX_MS * 1000:
            raise BadRequest(
                "parameters.timeout: must be an integer number of microseconds "
                f"in [0, {int(_MAX_MS * 1000)}] (0: no override)"
            )
        if t > 0:
            given.append(t)
    ms = header_timeout_ms(header)
    if ms is not None:
        given.append(int(ms * 1000))
    return min(given) if given else None


def v1_budget(
    body_ms: int | None, header: str | None, default_ms: float, arrival_ns: int, request_id: str
) -> Budget:
    """The smallest of the endpoint's default, the body's `budget_ms` and the header."""
    candidates = [default_ms]
    if body_ms is not None:
        candidates.append(body_ms)
    ms = header_timeout_ms(header)
    if ms is not None:
        candidates.append(ms)
    return Budget(min(candidates), arrival_ns, request_id)
