"""Per model version statistics in Triton's shape, fed by the batcher's observer calls, and the
Prometheus series beside them."""

from __future__ import annotations

import asyncio

import numpy as np
from prometheus_client import generate_latest

from server.batching.envelope import Envelope
from server.engine.stats import ModelStats
from server.metrics import Metrics


def _env(arrival_ns: int) -> Envelope:
    loop = asyncio.new_event_loop()
    try:
        fut = loop.create_future()
    finally:
        loop.close()
    return Envelope({"x": np.zeros((1, 1))}, 1, arrival_ns, 0, fut)


def test_counts_and_durations_in_tritons_shape():
    stats = ModelStats("m", 3, None)
    stats.on_batch(4, 10, 100, 20)
    stats.on_batch(4, 10, 300, 20)
    stats.on_batch(1, 5, 50, 5)
    for ok in (True, True, False):
        stats.on_request(_env(1_000), ok, 11_000, queue_ns=2_000, compute_ns=5_000)
    stats.on_rejected()
    stats.on_expired(_env(0), 7_000)
    stats.on_isolation(4)
    t = stats.as_triton()
    assert (t["name"], t["version"]) == ("m", "3")
    assert t["inference_count"] == 9 and t["execution_count"] == 3
    s = t["inference_stats"]
    assert s["success"] == {"count": 2, "ns": 20_000}
    assert s["fail"] == {"count": 2, "ns": 10_000 + 7_000}  # one failed, one expired
    assert s["queue"] == {"count": 3, "ns": 6_000}
    assert s["compute_infer"] == {"count": 9, "ns": 450}
    assert [b["batch_size"] for b in t["batch_stats"]] == [1, 4]
    assert t["batch_stats"][1]["compute_infer"] == {"count": 2, "ns": 400}
    assert t["shopserve"] == {"rejected": 1, "expired": 1, "isolations": 1}
    assert t["last_inference"] > 0


def test_prometheus_series_follow_the_counters():
    metrics = Metrics()
    stats = ModelStats("m", 1, metrics)
    stats.on_batch(2, 0, 1_000, 0)
    stats.on_request(_env(0), True, 5_000, queue_ns=1_000, compute_ns=1_000)
    stats.on_rejected()
    text = generate_latest(metrics.registry).decode()
    assert 'shopserve_inference_request_success_total{model="m",version="1"} 1.0' in text
    assert 'shopserve_inference_count_total{model="m",version="1"} 2.0' in text
    assert "shopserve_batch_size_bucket" in text
