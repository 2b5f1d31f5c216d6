"""Prometheus metrics, one registry per app. Names follow Triton's where Triton has the metric
(`nv_inference_*` -> `shopserve_inference_*`, same meaning and unit); docs/metrics.md maps them.

With several workers, prometheus_client's multiprocess mode: the supervisor sets
PROMETHEUS_MULTIPROC_DIR (a private directory) before any worker starts, so every worker's values
live in files there (prometheus_client picks its value class at import), and `/metrics` on any
worker reads them all (counters and histograms summed; gauges as their `multiprocess_mode` says).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as _Tally
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["Metrics", "observe_many"]

_LATENCY_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


def observe_many(histogram: Any, amounts: list[float]) -> None:
    """`histogram.observe(a)` for every `a`, with one increment per touched bucket and one of the
    sum: a batch's requests are recorded once per batch (the hot path's statistics are per batch
    where Triton's semantics allow, issue 11). `histogram` is a labelled Histogram child; this
    reads prometheus_client's own bucket list (`_upper_bounds`, `_buckets`, `_sum`, the layout of
    `Histogram.observe`), and tests/server/engine/test_stats.py proves the exposition is the same."""
    bounds = histogram._upper_bounds  # ends with +Inf: every amount has a bucket
    tally = _Tally(bisect_left(bounds, a) for a in amounts)
    histogram._sum.inc(sum(amounts))
    for i, n in tally.items():
        histogram._buckets[i].inc(n)


class Metrics:
    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version")
        r = self.registry
        self.success = Counter(
            "shopserve_inference_request_success",
            "Successful inference requests (nv_inference_request_success)",
            labels,
            registry=r,
        )
        self.failure = Counter(
            "shopserve_inference_request_failure",
            "Failed inference requests by reason (nv_inference_request_failure)",
            (*labels, "reason"),
            registry=r,
        )
        self.count = Counter(
            "shopserve_inference_count",
            "Inferences performed: rows, a batch of n counts n (nv_inference_count)",
            labels,
            registry=r,
        )
        self.exec_count = Counter(
            "shopserve_inference_exec_count",
            "Model executions: batches run (nv_inference_exec_count)",
            labels,
            registry=r,
        )
        self.request_us = Counter(
            "shopserve_inference_request_duration_us",
            "Cumulative end-to-end request time in us (nv_inference_request_duration_us)",
            labels,
            registry=r,
        )
        self.queue_us = Counter(
            "shopserve_inference_queue_duration_us",
            "Cumulative queue time in us (nv_inference_queue_duration_us)",
            labels,
            registry=r,
        )
        self.compute_infer_us = Counter(
            "shopserve_inference_compute_infer_duration_us",
            "Cumulative model run time in us (nv_inference_compute_infer_duration_us)",
            labels,
            registry=r,
        )
        self.rejected = Counter(
            "shopserve_inference_rejected",
            "Requests refused because the queue was full (429)",
            labels,
            registry=r,
        )
        self.expired = Counter(
            "shopserve_inference_expired",
            "Requests whose deadline passed before they ran (504)",
            labels,
            registry=r,
        )
        self._timings(r, labels)

    def _timings(self, r: CollectorRegistry, labels: tuple[str, ...]) -> None:
        """Queue depth, latency and batch-size distributions, isolations, the HTTP and gRPC series."""
        self.pending = Gauge(
            "shopserve_inference_pending_request_count",
            "Requests queued or running (nv_inference_pending_request_count)",
            labels,
            registry=r,
            multiprocess_mode="livesum",  # over the live workers
        )
        self.request_s = Histogram(
            "shopserve_request_duration_seconds",
            "End-to-end inference time per request",
            labels,
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.queue_s = Histogram(
            "shopserve_queue_duration_seconds",
            "Time a request waited in the model queue",
            labels,
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.compute_s = Histogram(
            "shopserve_compute_duration_seconds",
            "Batch compute time (collate, run, split) per request",
            labels,
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_size = Histogram(
            "shopserve_batch_size",
            "Rows per executed batch",
            labels,
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.isolations = Counter(
            "shopserve_batch_isolations",
            "Failed batches re-run in halves so that only the failing requests get the error",
            labels,
            registry=r,
        )
        self.inflight = Gauge(
            "shopserve_inflight_requests",
            "Requests admitted and not yet answered, by worker and model or endpoint",
            ("worker", "target"),
            registry=r,
            multiprocess_mode="livesum",  # `worker` (the pid) keeps the workers apart
        )
        self.http_requests = Counter(
            "shopserve_http_requests",
            "HTTP answers by route, status and error code ('ok' when not an error)",
            ("route", "status", "code"),
            registry=r,
        )
        self.grpc_requests = Counter(
            "shopserve_grpc_requests",
            "gRPC answers by method, status code and error code ('ok' when not an error)",
            ("method", "status", "code"),
            registry=r,
        )

    def exposition(self) -> bytes:
        """The text format of every series: this process's, or every worker's."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiprocess_dir))
        return generate_latest(registry)
