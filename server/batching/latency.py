"""Measured run time per batch size, so the batcher knows what a batch of `n` rows will cost."""

from __future__ import annotations

import bisect

__all__ = ["LatencyModel"]


class LatencyModel:
    """An exponentially weighted mean of run time (ns) per observed batch size, interpolated
    linearly between sizes and extrapolated from the two largest. Warm-up seeds it at load.

    A sample is clipped at `clip` times the current mean before it counts: on a busy core one
    preempted run of a 20 us model can take milliseconds, and unclipped it would move the mean
    (and the placement rule's choice, server/batching/runner.py) for the next dozen batches.
    A lasting slowdown still gets through, by up to `alpha * (clip - 1)` per sample."""

    def __init__(self, alpha: float = 0.2, clip: float = 3.0) -> None:
        self._alpha = alpha
        self._clip = clip
        self._sizes: list[int] = []
        self._ns: dict[int, float] = {}

    def observe(self, batch_size: int, run_ns: int) -> None:
        if batch_size <= 0 or run_ns < 0:
            return
        old = self._ns.get(batch_size)
        if old is None:
            bisect.insort(self._sizes, batch_size)
            self._ns[batch_size] = float(run_ns)
        else:
            sample = min(float(run_ns), self._clip * old)
            self._ns[batch_size] = old + self._alpha * (sample - old)

    def expected_ns(self, batch_size: int) -> float:
        """Expected run time of a batch of `batch_size` rows; 0 when nothing was measured."""
        sizes = self._sizes
        if not sizes:
            return 0.0
        exact = self._ns.get(batch_size)
        if exact is not None:
            return exact
        i = bisect.bisect_left(sizes, batch_size)
        if i == 0:
            return self._ns[sizes[0]]  # smaller batches cost no less than the launch floor
        if i == len(sizes):
            if len(sizes) == 1:
                return self._ns[sizes[0]] * batch_size / sizes[0]
            lo, hi = sizes[-2], sizes[-1]
        else:
            lo, hi = sizes[i - 1], sizes[i]
        y0, y1 = self._ns[lo], self._ns[hi]
        return max(0.0, y0 + (y1 - y0) * (batch_size - lo) / (hi - lo))

    def snapshot(self) -> dict[int, float]:
        return dict(self._ns)
