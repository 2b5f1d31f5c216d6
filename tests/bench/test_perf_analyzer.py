"""Triton's `perf_analyzer` (the binary from the tritonclient 2.40 wheel) runs unchanged against
shopserve started as a subprocess on a free loopback port with the demo repository, over HTTP
and over gRPC (`-i grpc`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.server_perf_analyzer import ensure_perf_analyzer, parse_throughputs
from bench.server_procs import ServerProcess, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def perf_analyzer():
    pa = ensure_perf_analyzer()
    if isinstance(pa, str):
        pytest.skip(pa)
    return pa


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from export.demo import build_demo_repository

    tmp = tmp_path_factory.mktemp("pa")
    repo = build_demo_repository(tmp / "repo")
    port, grpc_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "server", "serve", "--model-repository", str(repo),
           "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port)]  # fmt: skip
    env = {"SHOPSERVE_DEVICE": "cpu", "SHOPSERVE_LOG_LEVEL": "warning"}
    proc = ServerProcess(cmd, cpu=None, env=env, log_path=Path(tmp) / "server.log")
    try:
        proc.wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", timeout_s=60)
        yield {"http": f"127.0.0.1:{port}", "grpc": f"127.0.0.1:{grpc_port}"}
    finally:
        proc.stop()
    assert proc.proc.returncode == 0, proc.tail()  # SIGTERM drains and exits 0


def test_parse_throughputs():
    text = (
        "Inferences/Second vs. Client Average Batch Latency\n"
        "Concurrency: 1, throughput: 913.154 infer/sec, latency 1095 usec\n"
        "Concurrency: 2, throughput: 1518.44 infer/sec, latency 1316 usec\n"
    )
    assert parse_throughputs(text) == {1: 913.154, 2: 1518.44}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_analyzer_runs_against_shopserve(perf_analyzer, server, protocol):
    res = perf_analyzer.run(
        [
            "-m",
            "mlp",
            "-u",
            server[protocol],
            "-i",
            protocol,
            "--concurrency-range",
            "1:2",
            "--measurement-interval",
            "1000",
            # this 2-core machine is shared: accept noisy windows rather than retry for minutes
            "--stability-percentage",
            "100",
            "--max-trials",
            "10",
        ],  # fmt: skip
        timeout_s=120,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    got = parse_throughputs(out)
    assert set(got) == {1, 2}, out[-2000:]
    assert all(v > 0 for v in got.values()), got
