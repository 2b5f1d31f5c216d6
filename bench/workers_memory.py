"""Memory of a multi-worker server as PSS (proportional set size, /proc/PID/smaps_rollup): a
page shared by k processes counts 1/k in each, so the PSS of the supervisor plus its workers is
what the server costs the machine, shared pages once. Also: waiting until every worker of a
server answers on its own Unix socket (the run directory lands in TMPDIR, which the bench sets)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

__all__ = ["children", "pss_kib", "tree_pss", "wait_workers"]

_FIELDS = ("Pss", "Pss_Anon", "Pss_File", "Pss_Shmem", "Rss")


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return sorted(out)


def pss_kib(pid: int) -> dict[str, int]:
    """Pss, Pss_Anon, Pss_File, Pss_Shmem and Rss of one process, in KiB."""
    out = dict.fromkeys(_FIELDS, 0)
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in out:
            out[key] = int(rest.split()[0])
    return out


def tree_pss(pid: int) -> dict:
    """PSS of `pid` (the supervisor, or the single server) and its workers, each and summed."""
    procs = [pid, *children(pid)]
    each = {p: pss_kib(p) for p in procs}
    total = {k: sum(v[k] for v in each.values()) for k in _FIELDS}
    return {
        "processes": len(procs),
        "total_mib": {k: round(v / 1024, 1) for k, v in total.items()},
        "each_mib": [round(v["Pss"] / 1024, 1) for v in each.values()],
    }


def _ready_on(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(path))
            s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nhost: w\r\nconnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def wait_workers(tmpdir: Path, n: int, timeout_s: float = 180.0) -> None:
    """Until each of the `n` workers of the one server whose run directory is under `tmpdir`
    answers ready on its own socket (a single server, n = 1, has none: nothing to wait for)."""
    if n <= 1:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = list(tmpdir.glob("shopserve-run-*"))
        if runs and all(_ready_on(runs[0] / "sockets" / f"worker-{i}.sock") for i in range(n)):
            return
        time.sleep(0.2)
    raise TimeoutError(f"not all {n} workers ready after {timeout_s} s")
