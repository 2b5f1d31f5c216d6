"""The bench's gRPC row: perf_analyzer's CSV read, and the tritonclient loop driving the real
server in-process for a second."""

from __future__ import annotations

import pytest

from bench.server import parse_args
from bench.server_grpc import parse_perf_analyzer_csv, run_client_loop
from bench.server_report import VARIANTS, format_table


def test_parse_perf_analyzer_csv():
    text = (
        "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
        "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
        "p50 latency,p90 latency,p95 latency,p99 latency\n"
        "8,2830.5,5,23983,2994,14,134,1061,2,2773,3894,4276,4988\n"
    )
    r = parse_perf_analyzer_csv(text, 3.0)
    assert r.rps == pytest.approx(2830.5, rel=1e-3) and r.errors == 0
    assert (r.p50_ms, r.p99_ms) == (pytest.approx(2.773), pytest.approx(4.988))
    with pytest.raises(ValueError, match="no perf_analyzer row"):
        parse_perf_analyzer_csv("Concurrency,Inferences/Second\n", 1.0)


def test_grpc_is_a_variant_of_the_table():
    assert "grpc" in VARIANTS and "grpc" in parse_args([]).variants
    assert parse_args(["--grpc-client", "loop"]).grpc_client == "loop"
    row = {"variant": "grpc", "model": "mlp", "concurrency": 8, "rps": 900.0, "p50_ms": 1.0,
           "p99_ms": 2.0}  # fmt: skip
    assert " grpc " in format_table([row])


def test_client_loop_against_the_server(demo_repo):
    pytest.importorskip("tritonclient.grpc")
    from tests.server.grpc.conftest import serve

    for server in serve(demo_repo):
        r = run_client_loop(server.url, "mlp", 2, warm_s=0, measure_s=1, cpu=None)
        assert r.requests > 0 and r.errors == 0 and 0 < r.p50_ms <= r.p99_ms and r.cpu_s > 0
