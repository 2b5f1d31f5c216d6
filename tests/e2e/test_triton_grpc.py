"""The real `shopserve serve` (uvicorn, uvloop) as a subprocess, its gRPC endpoint on a free
loopback port, driven by Triton's gRPC clients: infer (sync, callback, asyncio), the answers
counted in /metrics beside HTTP's, SIGTERM draining a queued gRPC call, and a taken gRPC port
failing the start."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import urllib.request

import numpy as np
import pytest

from tests.e2e.serverproc import ServerProcess
from tests.server.grpc.conftest import SLOW

grpcclient = pytest.importorskip("tritonclient.grpc")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slow_repo(tmp_path_factory, demo_repo):
    repo = tmp_path_factory.mktemp("grpc-e2e") / "repo"
    shutil.copytree(demo_repo, repo)
    shutil.copytree(repo / "mlp", repo / "slow")
    (repo / "slow" / "config.toml").write_text(SLOW)
    return repo


@pytest.fixture(scope="module")
def server(slow_repo):
    proc = ServerProcess(slow_repo, grpc=True)
    yield proc
    assert proc.stop() == 0


def _features(rows: int = 2) -> list:
    inp = grpcclient.InferInput("features", [rows, 64], "FP32")
    inp.set_data_from_numpy(np.ones((rows, 64), np.float32))
    return [inp]


def test_infer_sync_callback_and_asyncio(server):
    c = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        assert c.is_server_ready() and c.is_model_ready("mlp")
        assert c.infer("mlp", _features()).as_numpy("score").shape == (2, 1)
        done: list = []
        c.async_infer("mlp", _features(1), lambda result, error: done.append((result, error)))
        deadline = time.monotonic() + 30
        while not done and time.monotonic() < deadline:
            time.sleep(0.01)
        assert done and done[0][1] is None and done[0][0].as_numpy("score").shape == (1, 1)
    finally:
        c.close()

    import tritonclient.grpc.aio as aioclient

    async def many() -> int:
        a = aioclient.InferenceServerClient(server.grpc_url)
        inp = aioclient.InferInput("features", [1, 64], "FP32")
        inp.set_data_from_numpy(np.ones((1, 64), np.float32))
        try:
            results = await asyncio.gather(*(a.infer("mlp", [inp]) for _ in range(16)))
        finally:
            await a.close()
        return len(results)

    assert asyncio.run(many()) == 16
    with urllib.request.urlopen(server.base + "/metrics") as r:
        text = r.read().decode()
    assert 'shopserve_grpc_requests_total{code="ok",method="ModelInfer",status="OK"}' in text


def test_a_taken_grpc_port_fails_the_start(server, slow_repo):
    with pytest.raises(RuntimeError, match="cannot listen"):
        ServerProcess(slow_repo, extra_args=["--grpc-port", str(server.grpc_port)], startup_s=60)


def test_sigterm_finishes_a_queued_grpc_call_and_exits_zero(slow_repo):
    proc = ServerProcess(slow_repo, grpc=True)
    c = grpcclient.InferenceServerClient(proc.grpc_url)
    results: list = []
    t = threading.Thread(target=lambda: results.append(c.infer("slow", _features(1))))
    try:
        t.start()
        time.sleep(0.5)  # queued: `slow` waits up to 2 s for a batch
        proc.terminate()
        t.join(30)
        assert len(results) == 1 and results[0].as_numpy("score").shape == (1, 1)
        assert proc.proc.wait(30) == 0
    finally:
        c.close()
        proc.stop()
