"""The load generator: Debian's `wrk` (C, epoll, one thread) with a Lua script that POSTs a fixed
body and prints its own summary as one JSON line from `done()`.

wrk is closed-loop: each of its `-c` connections sends the next request when the previous answer
arrives, so `-c N` is concurrency N. Its latency is the time from writing a request to reading the
whole response, recorded per request in a histogram (microsecond resolution); `done()` reads p50
and p99 out of it. CPU time of wrk itself comes from `wait4`, so the bench can show that the
generator costs less CPU than the server it drives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WrkResult", "ensure_wrk", "lua_script", "parse_wrk_output", "run_wrk"]

_MARK = "SHOPSERVE_WRK "

_LUA = """\
local f = assert(io.open({body_path}, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,'
    .. '"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors + non-2xx answers
    cpu_s: float = 0.0  # wrk's own user + system time

    @property
    def rps(self) -> float:
        ok = max(0, self.requests - self.errors)
        return ok / self.duration_s if self.duration_s > 0 else 0.0


def lua_script(body_path: Path) -> str:
    """The wrk script that POSTs the bytes of `body_path`."""
    return _LUA.format(body_path=json.dumps(str(body_path)), mark=_MARK)


def parse_wrk_output(text: str) -> WrkResult:
    """The summary line printed by `lua_script`'s `done()`; ValueError when there is none."""
    for line in reversed(text.splitlines()):
        if line.startswith(_MARK):
            d = json.loads(line[len(_MARK) :])
            errors = sum(d[k] for k in ("connect", "read", "write", "status", "timeout"))
            return WrkResult(
                requests=int(d["requests"]),
                duration_s=d["duration_us"] / 1e6,
                p50_ms=d["p50_us"] / 1e3,
                p99_ms=d["p99_us"] / 1e3,
                errors=int(errors),
            )
    raise ValueError(f"no wrk summary in output: {text[-500:]!r}")


def ensure_wrk(install: bool = True) -> str | None:
    """The path of `wrk`, installing Debian's package when missing and allowed; None if absent."""
    path = shutil.which("wrk")
    if path or not install or shutil.which("apt-get") is None:
        return path
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-q", "wrk"],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )
    return shutil.which("wrk")


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    *,
    concurrency: int,
    duration_s: int,
    cpu: int | None,
    timeout_s: int = 30,
) -> WrkResult:
    """One closed-loop wrk run (one thread, `concurrency` connections), pinned to `cpu`."""
    cmd = [
        wrk,
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, int(duration_s))}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(script),
        url,
    ]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {out[-500:]}")
    res = parse_wrk_output(out)
    return WrkResult(
        res.requests,
        res.duration_s,
        res.p50_ms,
        res.p99_ms,
        res.errors,
        cpu_s=usage.ru_utime + usage.ru_stime,
    )
