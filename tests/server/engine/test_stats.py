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


def _answered_env(arrival_ns: int, dequeue_ns: int) -> Envelope:
    env = _env(arrival_ns)
    env.dequeue_ns = dequeue_ns
    return env


def _exposition(metrics: Metrics) -> list[str]:
    """The exposition without the `_created` timestamps (they differ between registries)."""
    text = generate_latest(metrics.registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_a_batch_recorded_at_once_reads_as_its_requests_one_by_one():
    # arrivals spread over every latency bucket, one exactly on a bound (le is inclusive)
    arrivals = [0, 50_000, 100_000, 900_000, 4_000_000, 9_000_000, 9_900_000, 2_000_000_000]
    now, compute = 10_000_000_000, 100_000
    one, batch = Metrics(), Metrics()
    by_request, by_batch = ModelStats("m", 1, one), ModelStats("m", 1, batch)
    envs = [_answered_env(now - a, now - a // 2) for a in arrivals]
    for env in envs:
        q = env.dequeue_ns - env.arrival_ns
        by_request.on_request(env, True, now, queue_ns=q, compute_ns=compute)
    by_batch.on_answered(envs, now, compute)
    assert _exposition(batch) == _exposition(one)
    a, b = by_request.as_triton(), by_batch.as_triton()
    assert a["inference_stats"] == b["inference_stats"]
    assert 'shopserve_request_duration_seconds_bucket{le="0.0001",model="m",version="1"} 3.0' in (
        "\n".join(_exposition(batch))
    )
