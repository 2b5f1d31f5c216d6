"""SIGTERM drains in-flight requests and exits 0; a client that goes away is dropped before its
request runs; a broken model does not stop the server."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.request

import pytest

from server.contract.model_config import DynamicBatching, ModelWarmup, QueuePolicy
from tests.configs import mlp_config, toml
from tests.e2e.serverproc import ServerProcess

pytestmark = pytest.mark.slow

# the MLP with a 2 s queue delay, so requests sit in its queue on demand
_SLOW_CONFIG = toml(
    mlp_config(
        "slow",
        8,
        dynamic_batching=DynamicBatching(
            max_queue_delay_microseconds=2_000_000,
            default_queue_policy=QueuePolicy(default_timeout_microseconds=10_000_000),
        ),
        model_warmup=ModelWarmup(batch_sizes=[1]),
    )
)


def _post(base: str, path: str, body: dict, timeout: float = 30) -> tuple[int, dict]:
    req = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _one(value: float = 1.0) -> dict:
    return {
        "inputs": [{"name": "features", "shape": [1, 64], "datatype": "FP32", "data": [value] * 64}]
    }


@pytest.fixture
def slow_repo(repo_copy):
    """`slow`: the MLP with a 2 s queue delay, so requests sit in its queue on demand."""
    shutil.copytree(repo_copy / "mlp", repo_copy / "slow")
    (repo_copy / "slow" / "config.toml").write_text(_SLOW_CONFIG)
    (repo_copy / "broken").mkdir()
    (repo_copy / "broken" / "config.toml").write_text('name = "broken"\nmax_batch_size = "x"\n')
    return repo_copy


# `broken` never loads: with strict readiness (the default) the server would never be ready
LENIENT = {"SHOPSERVE_STRICT_READINESS": "false"}


def test_sigterm_finishes_queued_requests_and_exits_zero(slow_repo):
    server = ServerProcess(slow_repo, env=LENIENT)
    try:
        status, rows = _post(server.base, "/v2/repository/index", {})
        assert any(r["name"] == "broken" and "$.max_batch_size" in r["reason"] for r in rows)
        results: list[tuple[int, dict]] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(_post(server.base, "/v2/models/slow/infer", _one()))
            )
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        time.sleep(0.5)  # queued: the batcher waits up to 2 s for more
        server.terminate()
        for t in threads:
            t.join(30)
        assert [s for s, _ in results] == [200, 200, 200]
        assert server.proc.wait(30) == 0
    finally:
        server.stop()


def test_client_that_disconnects_is_not_run(slow_repo):
    server = ServerProcess(slow_repo, env=LENIENT)
    try:
        body = json.dumps(_one(7.0)).encode()
        raw = (
            f"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(raw)
            time.sleep(0.3)  # queued behind the 2 s batching delay
        time.sleep(3.0)
        with urllib.request.urlopen(server.base + "/v2/models/slow/stats") as r:
            stats = json.loads(r.read())["model_stats"][0]
        # warm-up does not count; the dropped request never ran
        assert stats["execution_count"] == 0, stats
        assert _post(server.base, "/v2/models/slow/infer", _one())[0] == 200
    finally:
        assert server.stop() == 0
