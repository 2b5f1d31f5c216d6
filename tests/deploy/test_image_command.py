"""No Docker engine runs here, so the image's own command is run as the container would run it:
ENTRYPOINT + CMD and the ENV of deploy/Dockerfile's runtime stage, with the venv in place of
/opt/shopserve, a demo repository in place of the /models mount, a temp dir in place of /tmp and
127.0.0.1 on a free port in place of 0.0.0.0:8000; the HEALTHCHECK command decides readiness."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from loadtests.serve import free_port
from tests.deploy.dockerfile import Stage, parse_dockerfile

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUNTIME: Stage = parse_dockerfile(ROOT / "deploy" / "Dockerfile")[-1]
MLP_BODY = json.dumps(
    {"inputs": [{"name": "features", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}
).encode()


class Container:
    """The image's command and environment, mapped onto this machine."""

    def __init__(self, repo: Path, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.env = self._env(repo, tmp, env or {})
        self.argv = list(RUNTIME.command)
        self.log = tmp / "server.log"
        self.proc: subprocess.Popen | None = None

    def _env(self, repo: Path, tmp: Path, extra: dict[str, str]) -> dict[str, str]:
        env = {}
        for key, value in RUNTIME.env.items():
            if value == "/tmp" or value.startswith("/tmp/"):  # the image's /tmp, before the
                value = str(tmp) + value[len("/tmp") :]  # venv path (a clone may live in /tmp)
            value = value.replace("/opt/shopserve/bin", str(Path(sys.executable).parent))
            value = value.replace("$PATH", os.environ.get("PATH", ""))
            env[key] = value
        env["SHOPSERVE_MODEL_REPOSITORY"] = str(repo)
        env["SHOPSERVE_PORT"] = str(self.port)
        env["SHOPSERVE_GRPC_PORT"] = str(free_port())
        env["SHOPSERVE_LOG_LEVEL"] = "warning"
        return {**env, **extra}

    def on_loopback(self) -> Container:
        i = self.argv.index("--host")
        self.argv[i + 1] = "127.0.0.1"
        return self

    def start(self) -> Container:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=out)
        return self

    def healthcheck(self) -> int:
        _, argv = RUNTIME.healthcheck
        return subprocess.run(argv, env=self.env, capture_output=True, timeout=30).returncode

    def wait_healthy(self, timeout_s: float = 180) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.output()}")
            if self.healthcheck() == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"HEALTHCHECK never passed: {self.output()}")

    def get(self, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body)
        if body is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def test_image_command_serves_and_drains(demo_repo: Path, tmp_path: Path) -> None:
    box = Container(demo_repo, tmp_path).on_loopback().start()
    try:
        box.wait_healthy()
        assert box.get("/v2/health/ready") == (200, b'{"ready":true}')
        assert box.get("/v2/health/live")[0] == 200
        status, body = box.get("/v2/models/mlp/infer", MLP_BODY)
        assert status == 200, body
        # the HPA's signal exists, per worker and target (deploy/prometheus-adapter/values.yaml)
        metrics = box.get("/metrics")[1].decode()
        assert f'shopserve_inflight_requests{{target="mlp",worker="{box.proc.pid}"}} 0.0' in metrics
    finally:
        rc = box.stop()
    assert rc == 0, box.output()  # SIGTERM drained: exit 0, not 143
    assert box.healthcheck() != 0  # and the HEALTHCHECK says so


def test_per_model_split_with_explicit_model_control(demo_repo: Path, tmp_path: Path) -> None:
    """docs/deploy.md's per-model InferenceService: explicit mode loading one model is ready as
    soon as that model is, and serves only it."""
    env = {
        "SHOPSERVE_MODEL_CONTROL_MODE": "explicit",
        "SHOPSERVE_LOAD_MODELS": "mlp",
        "SHOPSERVE_ADMIN_TOKEN": "test-token",
    }
    box = Container(demo_repo, tmp_path, env).on_loopback().start()
    try:
        box.wait_healthy()
        assert box.get("/v2/models/mlp/ready")[0] == 200
        assert box.get("/v2/models/simple/ready")[0] != 200
        assert box.get("/v2/models/mlp/infer", MLP_BODY)[0] == 200
    finally:
        assert box.stop() == 0, box.output()


def test_explicit_mode_on_all_interfaces_needs_a_token(demo_repo: Path, tmp_path: Path) -> None:
    """The image listens on 0.0.0.0, so explicit model control without SHOPSERVE_ADMIN_TOKEN
    refuses to start (before it binds): the per-model manifests must set a token."""
    env = {"SHOPSERVE_MODEL_CONTROL_MODE": "explicit", "SHOPSERVE_LOAD_MODELS": "mlp"}
    box = Container(demo_repo, tmp_path, env).start()  # the image's own --host 0.0.0.0
    try:
        assert box.proc is not None
        assert box.proc.wait(120) == 2, box.output()
    finally:
        box.stop()
    assert "without an admin token" in box.output()
