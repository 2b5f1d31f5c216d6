"""Helpers of tests/e2e/test_workers.py: a `shopserve serve --workers N` subprocess whose run
directory lands in the test's temp dir (TMPDIR), so a test can call each worker on its own Unix
socket; the worker pids; and a load generator that records every answer."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.serverproc import ServerProcess

ROW = [0.5] * 64
MLP_BODY = {"inputs": [{"name": "features", "shape": [1, 64], "datatype": "FP32", "data": ROW}]}


def long_timeouts(repo: Path) -> None:
    """Queue timeouts of 30 s: a failure in these tests must be a worker's, not the busy
    machine's."""
    for config in repo.glob("*/config.toml"):
        text = re.sub(
            r"default_timeout_microseconds = \d+",
            "default_timeout_microseconds = 30000000",
            config.read_text(),
        )
        config.write_text(text)


class Workers:
    def __init__(
        self,
        repo: Path,
        tmp: Path,
        n: int = 2,
        *,
        config: str = "",
        grpc: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.tmp, self.n = tmp, n
        args = ["--workers", str(n)]
        if config:
            (tmp / "settings.toml").write_text(config)
            args += ["--config", str(tmp / "settings.toml")]
        self.server = ServerProcess(
            repo, env={"TMPDIR": str(tmp), **(env or {})}, extra_args=args, grpc=grpc
        )
        try:
            self.wait_all_ready(180)
        except BaseException:
            self.server.stop()
            raise

    @property
    def base(self) -> str:
        return self.server.base

    def socket(self, index: int) -> Path:
        [run] = self.tmp.glob("shopserve-run-*")
        return run / "sockets" / f"worker-{index}.sock"

    def client(self, index: int, timeout: float = 60) -> httpx.Client:
        """A client of worker `index` alone (its Unix socket)."""
        transport = httpx.HTTPTransport(uds=str(self.socket(index)))
        return httpx.Client(transport=transport, base_url="http://worker", timeout=timeout)

    def ready(self, index: int) -> bool:
        try:
            with self.client(index, timeout=2) as c:
                return c.get("/v2/health/ready").status_code == 200
        except (httpx.HTTPError, OSError, ValueError):
            return False

    def wait_all_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.server.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.server.output()}")
            if all(self.ready(i) for i in range(self.n)):
                return
            time.sleep(0.2)
        raise TimeoutError(f"not every worker was ready after {timeout_s} s")

    def pids(self) -> list[int]:
        """The live worker processes (children of the supervisor)."""
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.server.proc.pid:
                    out.append(int(entry))
        return sorted(out)

    def stop(self) -> int:
        return self.server.stop(60)


class Load(threading.Thread):
    """POST `body` to `path` until stopped, recording (start time, status; 0: no answer)."""

    def __init__(self, make_client, path: str, body: dict, reconnect: bool = False) -> None:
        super().__init__(daemon=True)
        self.make_client, self.path, self.body, self.reconnect = make_client, path, body, reconnect
        self.halt = threading.Event()
        self.answers: list[tuple[float, int]] = []

    def run(self) -> None:
        client = self.make_client()
        try:
            while not self.halt.is_set():
                t0 = time.monotonic()
                try:
                    status = client.post(self.path, json=self.body).status_code
                except httpx.HTTPError:
                    status = 0
                self.answers.append((t0, status))
                if self.reconnect or status == 0:  # a new connection: any worker may take it
                    client.close()
                    client = self.make_client()
        finally:
            client.close()

    def stop(self) -> list[tuple[float, int]]:
        self.halt.set()
        self.join(60)
        return self.answers


def failures(answers: list[tuple[float, int]]) -> list[tuple[float, int]]:
    return [a for a in answers if a[1] != 200]
