"""Where a pipeline's CPU work runs: inline on the event loop, or in a thread.

One rule (issue 11): work whose predicted cost is under `inline_us` runs inline, because a hand-off
to a thread costs ~50 µs at p50 and milliseconds at p99 on a busy core; anything longer runs in a
small thread pool, so that one endpoint's tokenization or kernel call does not hold every other
request's event loop. The work offloaded here releases the GIL while it runs (`tokenizers`'
`encode_batch` is Rust, the `kernels/` functions are Numba `nogil=True`), so the loop keeps going.

The prediction is a per-kind cost model: an exponentially weighted mean of nanoseconds per unit
of work (characters for tokenization, candidates x features for feature assembly, rows x columns
for a scan), measured on every call, inline or not. A kind never measured runs inline once.

Measured as wall time, where model batches (`batching.runner`) are measured as the CPU time of
the thread that ran them. The difference is deliberate: what decides the placement is how long
an inline call would hold the event loop. An ONNX Runtime run does its work on the calling
thread (with the intra-op threads beside it), so that thread's CPU time is the hold, without the
preemption and GIL waits that inflate a pooled run's wall time on a busy machine. Here the
caller can wait while other threads work: `tokenizers`' `encode_batch` spreads a batch over its
Rayon threads, and the calling thread's CPU time would predict a fraction of the hold (256
reviews of ~50 words: 35 ms wall, 1.3 ms of the caller's CPU, measured here 2026-11-30).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["INLINE_US", "CpuWork", "configure_cpu_work", "cpu_work"]

T = TypeVar("T")

INLINE_US = 75.0  # the measured band for one hand-off: 50-100 µs
_ALPHA = 0.2  # weight of the newest measurement in the per-unit cost


class CpuWork:
    def __init__(self, inline_us: float = INLINE_US, threads: int = 2) -> None:
        self.inline_us = inline_us
        self.threads = threads
        self._ns_per_unit: dict[str, float] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.offloaded: dict[str, int] = {}  # kind -> calls sent to the pool (tests, stats)

    def predicted_us(self, kind: str, units: float) -> float | None:
        per = self._ns_per_unit.get(kind)
        return None if per is None else per * max(units, 1.0) / 1e3

    def _record(self, kind: str, units: float, ns: int) -> None:
        per = ns / max(units, 1.0)
        old = self._ns_per_unit.get(kind)
        self._ns_per_unit[kind] = per if old is None else old + _ALPHA * (per - old)

    def _timed(self, kind: str, units: float, fn: Callable[..., T], *args: object) -> T:
        t0 = time.perf_counter_ns()
        try:
            return fn(*args)
        finally:
            self._record(kind, units, time.perf_counter_ns() - t0)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="shopserve-cpu")
            return self._pool

    async def run(self, kind: str, units: float, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)`, inline when predicted under `inline_us` (or never measured), else in
        the pool; `units` sizes this call for the cost model."""
        predicted = self.predicted_us(kind, units)
        if predicted is None or predicted < self.inline_us:
            return self._timed(kind, units, fn, *args)
        self.offloaded[kind] = self.offloaded.get(kind, 0) + 1
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), self._timed, kind, units, fn, *args)

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None


_DEFAULT = CpuWork()


def cpu_work() -> CpuWork:
    """The process's placement rule (one per worker process)."""
    return _DEFAULT


def configure_cpu_work(inline_us: float) -> None:
    """The `inline_cpu_us` setting, applied when the app is created."""
    _DEFAULT.inline_us = inline_us
