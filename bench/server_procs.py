"""Server processes for the bench: start pinned to a core, wait until ready, account their CPU,
stop them (and every child: LitServe forks an API server and an inference worker)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = [
    "ServerProcess",
    "core_busy_s",
    "free_port",
    "load_snapshot",
    "tree_cpu_s",
]

_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree_cpu_s(pid: int) -> float:
    """User + system seconds of `pid` and its live descendants (threads included)."""
    kids = _children()
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        todo.extend(kids.get(p, []))
    return total / _TICK


def core_busy_s(cores: tuple[int, ...]) -> float:
    """Non-idle seconds that `cores` have spent since boot (all processes)."""
    busy = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *vals = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
            v = [int(x) for x in vals]
            busy += sum(v) - v[3] - v[4]  # minus idle and iowait
    return busy / _TICK


def load_snapshot(self_pid: int | None = None) -> dict:
    """Load average and the busiest other processes right now (from `top -bn1`)."""
    snap: dict = {"loadavg": [round(x, 2) for x in os.getloadavg()], "busy": []}
    if shutil.which("top"):
        out = subprocess.run(
            ["top", "-bn1", "-w", "200"], capture_output=True, text=True, check=False
        ).stdout
        lines = out.splitlines()
        start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("PID")), None)
        for ln in lines[start + 1 :] if start is not None else []:
            parts = ln.split(None, 11)
            if len(parts) >= 12 and parts[0] != str(self_pid):
                try:
                    cpu = float(parts[8])
                except ValueError:
                    continue
                if cpu >= 5.0:
                    snap["busy"].append(f"{parts[11]}:{cpu:.0f}%")
    return snap


class ServerProcess:
    """A server subprocess pinned to `cpu`, in its own session so the whole group is stopped."""

    def __init__(
        self,
        cmd: list[str],
        *,
        cpu: int | None,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        if cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(cpu), *cmd]
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_s(self) -> float:
        return tree_cpu_s(self.proc.pid)

    def wait_ready(self, url: str, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.cmd} exited {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{url} not ready after {timeout_s}s: {self.tail()}")

    def tail(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_bytes()[-2000:].decode(errors="replace")
        return ""

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM to the group, then SIGKILL whatever is left of it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # children that outlived their parent
        if self.proc.poll() is None:
            self.proc.wait(5)
        if self._log is not subprocess.DEVNULL:
            self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
