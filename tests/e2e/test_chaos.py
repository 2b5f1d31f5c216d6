"""Faults through the real server (a subprocess on loopback): a poisoned request in a batch, a
burst of 10x the queue bound, reloads under load and SIGTERM under load. The scenarios are
`bench/faults.py`'s (`shopserve bench faults` measures them); here they are asserted. Each test
is bounded in time (a client timeout on every request, and the test's own timeout)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.faults import (
    POISON_ID,
    build_fault_repository,
    burst,
    infer_body,
    poisoned_batches,
    reload_under_load,
    request,
    sigterm_under_load,
)
from tests.e2e.serverproc import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

QUEUE = 8
ADMIN = {
    "SHOPSERVE_MODEL_CONTROL_MODE": "explicit",
    "SHOPSERVE_LOAD_MODELS": "*",
    "SHOPSERVE_ADMIN_TOKEN": "t",
    "SHOPSERVE_LOG_LEVEL": "error",  # the poisoned requests' tracebacks stay small
}


@pytest.fixture(scope="module")
def fault_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo models (bagofwords batching over a 50 ms window, no value bounds) and `slow`,
    ~100 ms per request, one at a time."""
    return build_fault_repository(tmp_path_factory.mktemp("faults") / "repo", slow_ms=100)


@pytest.fixture(scope="module")
def admin_server(fault_repo: Path):
    server = ServerProcess(fault_repo, env=ADMIN)
    yield server
    server.stop()


def test_out_of_vocabulary_id_fails_the_model(admin_server: ServerProcess):
    """The premise of the poisoned batch: bagofwords declares no bounds, so an id outside its
    embedding table reaches ONNX Runtime, whose Gather fails (500 inference_failed)."""
    body = infer_body("input_ids", [1, 3], "INT64", [1, 2, POISON_ID])
    a = request(admin_server.base, "POST", "/v2/models/bagofwords/infer", body)
    assert a.status == 500, a
    assert b"inference_failed" in a.body and b"Gather" in a.body, a.body


def test_poisoned_batch_fails_only_the_poisoned_request(admin_server: ServerProcess):
    res = poisoned_batches(admin_server.base, rounds=3, good=15)
    assert res["batch_mates_failed"] == 0, res
    assert res["poisoned_500"] == res["rounds"], res
    assert res["poisoned_codes"] == ["inference_failed"], res
    assert res["isolations"] > 0, res  # shopserve_batch_isolations_total grew


def test_reload_under_load_answers_every_request(admin_server: ServerProcess):
    res = reload_under_load(admin_server.base, reloads=5, clients=4)
    assert res["reloads_ok"] == 5, res
    assert res["lost"] == 0 and res["non_200"] == [], res
    assert res["ok"] == res["sent"] > 50, res


def test_burst_of_10x_the_queue_bound_loses_nothing(fault_repo: Path):
    server = ServerProcess(fault_repo, env={"SHOPSERVE_DEFAULT_MAX_QUEUE_SIZE": str(QUEUE)})
    try:
        res = burst(server.base, 10 * QUEUE)
    finally:
        server.stop()
    assert res["lost"] == 0 and res["other"] == [], res
    assert res["ok"] + res["refused"] == res["sent"] == 10 * QUEUE, res
    assert res["ok"] >= 1 and res["refused"] >= 1, res  # the bound was reached, not bypassed
    assert res["refused_without_retry_after"] == 0, res


def test_sigterm_under_load_answers_what_was_admitted(fault_repo: Path):
    server = ServerProcess(fault_repo)

    def wait_exit(timeout: float) -> int | None:
        try:
            return server.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    try:
        res = sigterm_under_load(server.base, server.terminate, wait_exit, n=8)
    finally:
        server.stop()
    assert res["admitted_before_sigterm"] == 8, res
    assert res["ok"] == 8 and res["lost"] == 0, (res, server.output()[-2000:])
    assert res["exit_code"] == 0, (res, server.output()[-2000:])
