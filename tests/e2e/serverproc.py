"""Start the real `shopserve serve` as a subprocess on a free loopback port, and stop it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from loadtests.serve import free_port, serve_command, wait_ready


class ServerProcess:
    def __init__(
        self,
        repo: Path,
        *,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        startup_s: float = 120,
        grpc: bool = False,
    ) -> None:
        self.port = free_port()
        self.url = f"127.0.0.1:{self.port}"
        self.base = f"http://{self.url}"
        self.grpc_port = free_port() if grpc else 0  # gRPC only when asked: ports stay private
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        cmd = serve_command(repo, self.port, extra_args, grpc_port=self.grpc_port)
        full_env = {
            **os.environ,
            "SHOPSERVE_DEVICE": "cpu",
            "SHOPSERVE_LOG_LEVEL": "warning",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        if wait_ready(self.proc, self.base, startup_s, 0.1):
            return
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited: {self.proc.stdout.read().decode()}")
        self.stop()
        raise RuntimeError("server did not become ready")

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.proc.stdout.read().decode() if self.proc.stdout else ""
