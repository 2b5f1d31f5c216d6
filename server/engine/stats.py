"""Per model version statistics in Triton's shape (`/v2/models/{m}/stats`), and the observer that
the batcher reports to: it feeds both these counters and the Prometheus metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from server.batching.envelope import Envelope
from server.metrics import Metrics, observe_many

__all__ = ["ModelStats"]

# the per-model series of server/metrics.py (attribute names), and Triton's failure reasons
_SERIES = (  # noqa: SIM905 (a list literal would be formatted as a table of 14 lines)
    "success count exec_count request_us queue_us compute_infer_us rejected expired request_s "
    "queue_s compute_s batch_size pending isolations"
).split()
_FAILURE_REASONS = ("BACKEND", "REJECTED", "TIMEOUT")


@dataclass(slots=True)
class _Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int, n: int = 1) -> None:
        self.count += n
        self.ns += max(0, ns)

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass(slots=True)
class _BatchStat:
    compute_input: _Duration = field(default_factory=_Duration)
    compute_infer: _Duration = field(default_factory=_Duration)
    compute_output: _Duration = field(default_factory=_Duration)


class ModelStats:
    """Counters of one model version; the BatchObserver of its batcher."""

    def __init__(
        self,
        name: str,
        version: int,
        metrics: Metrics | None,
        device: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        # where the version runs and why: strings, which summing across workers leaves as they are
        self.device = dict(device or {})
        self.version = version
        self.last_inference_ms = 0
        self.inference_count = 0
        self.execution_count = 0
        self.success = _Duration()
        self.fail = _Duration()
        self.queue = _Duration()
        self.compute_input = _Duration()
        self.compute_infer = _Duration()
        self.compute_output = _Duration()
        self.rejected = 0
        self.expired = 0
        self.isolations = 0
        self.batches: dict[int, _BatchStat] = {}
        self._m: dict[str, Any] | None = None
        if metrics is not None:
            labels = (name, str(version))
            # one child per series, bound once: the hot path only increments
            self._m = {a: getattr(metrics, a).labels(*labels) for a in _SERIES}
            self._m.update(
                {f"fail_{r}": metrics.failure.labels(*labels, r) for r in _FAILURE_REASONS}
            )

    # -- BatchObserver ---------------------------------------------------------------------------

    def pending(self, delta: int) -> None:
        if self._m:
            self._m["pending"].inc(delta)

    def on_rejected(self) -> None:
        self.rejected += 1
        if self._m:
            self._m["rejected"].inc()
            self._m["fail_REJECTED"].inc()

    def on_expired(self, env: Envelope, now_ns: int) -> None:
        self.expired += 1
        self.fail.add(now_ns - env.arrival_ns)
        if self._m:
            self._m["expired"].inc()
            self._m["fail_TIMEOUT"].inc()

    def on_isolation(self, size: int) -> None:
        self.isolations += 1
        if self._m:
            self._m["isolations"].inc()

    def on_request(
        self, env: Envelope, ok: bool, now_ns: int, queue_ns: int, compute_ns: int
    ) -> None:
        total = now_ns - env.arrival_ns
        self.queue.add(queue_ns)
        if ok:
            self.success.add(total)
            self.last_inference_ms = int(time.time() * 1000)
        else:
            self.fail.add(total)
        m = self._m
        if m:
            if ok:
                m["success"].inc()
                m["request_us"].inc(total / 1e3)
                m["request_s"].observe(total / 1e9)
            else:
                m["fail_BACKEND"].inc()
            m["queue_us"].inc(queue_ns / 1e3)
            m["queue_s"].observe(queue_ns / 1e9)
            m["compute_s"].observe(compute_ns / 1e9)

    def on_answered(self, envs: list[Envelope], now_ns: int, compute_ns: int) -> None:
        """A batch's answered requests, recorded once per batch: the same counts and sums as one
        `on_request(env, True, ...)` each, with one increment per series and touched bucket."""
        totals = [now_ns - e.arrival_ns for e in envs]
        queues = [e.dequeue_ns - e.arrival_ns for e in envs]
        n = len(envs)
        total_ns, queue_ns = sum(max(0, t) for t in totals), sum(max(0, q) for q in queues)
        self.success.count += n
        self.success.ns += total_ns
        self.queue.count += n
        self.queue.ns += queue_ns
        self.last_inference_ms = int(time.time() * 1000)
        m = self._m
        if m:
            m["success"].inc(n)
            m["request_us"].inc(sum(totals) / 1e3)
            m["queue_us"].inc(sum(queues) / 1e3)
            observe_many(m["request_s"], [t / 1e9 for t in totals])
            observe_many(m["queue_s"], [q / 1e9 for q in queues])
            observe_many(m["compute_s"], [compute_ns / 1e9] * n)

    def on_batch(self, size: int, input_ns: int, infer_ns: int, output_ns: int) -> None:
        self.inference_count += size
        self.execution_count += 1
        self.compute_input.add(input_ns, size)
        self.compute_infer.add(infer_ns, size)
        self.compute_output.add(output_ns, size)
        b = self.batches.get(size)
        if b is None:
            b = self.batches[size] = _BatchStat()
        b.compute_input.add(input_ns)
        b.compute_infer.add(infer_ns)
        b.compute_output.add(output_ns)
        m = self._m
        if m:
            m["count"].inc(size)
            m["exec_count"].inc()
            m["compute_infer_us"].inc(infer_ns / 1e3)
            m["batch_size"].observe(size)

    # -- Triton's JSON -----------------------------------------------------------------------------

    def as_triton(self) -> dict[str, Any]:
        zero = {"count": 0, "ns": 0}
        return {
            "name": self.name,
            "version": str(self.version),
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.as_dict(),
                "fail": self.fail.as_dict(),
                "queue": self.queue.as_dict(),
                "compute_input": self.compute_input.as_dict(),
                "compute_infer": self.compute_infer.as_dict(),
                "compute_output": self.compute_output.as_dict(),
                "cache_hit": zero,
                "cache_miss": zero,
            },
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": b.compute_input.as_dict(),
                    "compute_infer": b.compute_infer.as_dict(),
                    "compute_output": b.compute_output.as_dict(),
                }
                for size, b in sorted(self.batches.items())
            ],
            "memory_usage": [],
            "shopserve": {
                "rejected": self.rejected,
                "expired": self.expired,
                "isolations": self.isolations,
                **self.device,
            },
        }
