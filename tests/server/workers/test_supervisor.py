"""The supervisor's part that needs no running worker: the `workers` setting, a taken port
failing the start before any worker exists, and Prometheus' multiprocess files summed over
processes (the workers themselves: tests/e2e/test_workers.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli import _workers
from server.settings import Settings, load_settings
from server.workers.supervisor import supervise


def test_workers_setting_number_or_auto():
    assert load_settings(environ={}).worker_count == 1
    assert load_settings(environ={"SHOPSERVE_WORKERS": "3"}).worker_count == 3
    auto = load_settings(environ={"SHOPSERVE_WORKERS": "auto"})
    assert auto.workers == "auto" and auto.worker_count == len(os.sched_getaffinity(0))
    assert load_settings(environ={}, workers=_workers("auto")).workers == "auto"
    assert load_settings(environ={}, workers=_workers("2")).worker_count == 2


@pytest.mark.parametrize("listen", ["shared", "reuseport"])
@pytest.mark.parametrize("which", ["http", "grpc"])
def test_a_taken_port_fails_the_start_before_any_worker(listen, which, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = (
            {"port": port, "grpc_port": 0} if which == "http" else {"port": 0, "grpc_port": port}
        )
        settings = Settings(
            model_repository=str(tmp_path),
            workers=2,
            listen=listen,
            **ports,  # type: ignore[arg-type]
        )
        assert supervise(settings) == 1


_COUNT = """
import sys
from server.metrics import Metrics
m = Metrics(sys.argv[1])
m.success.labels("mlp", "1").inc(int(sys.argv[2]))
m.inflight.labels("w", "mlp").inc()
if len(sys.argv) > 3:
    print(m.exposition().decode())
"""


def test_metrics_of_every_process_in_one_exposition(tmp_path: Path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def run(*args: str) -> str:
        cmd = [sys.executable, "-c", _COUNT, str(tmp_path), *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout

    run("2")
    text = run("3", "show")
    assert 'shopserve_inference_request_success_total{model="mlp",version="1"} 5.0' in text
    # livesum over processes that still live: the first one is gone (its file is not marked
    # dead here; the supervisor marks a dead worker's), the second counts
    assert "shopserve_inflight_requests" in text


def test_the_run_directory_leaves_room_for_unix_socket_names(tmp_path, monkeypatch):
    import os
    import shutil
    import tempfile

    from server.workers.spec import SUN_PATH_MAX, RunDir

    long = tmp_path / ("t" * 60) / ("m" * 40)
    long.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(long))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    run = RunDir.make(256)
    try:
        assert len(os.fsencode(run.socket_of(255))) < SUN_PATH_MAX
        assert run.sockets.is_dir() and not any(long.iterdir())
    finally:
        shutil.rmtree(run.root)
    short = Path(tempfile.mkdtemp(dir="/tmp"))
    monkeypatch.setenv("TMPDIR", str(short))
    monkeypatch.setattr(tempfile, "tempdir", None)
    try:
        assert RunDir.make(2).root.parent == short  # $TMPDIR is kept when the names fit
    finally:
        shutil.rmtree(short)
