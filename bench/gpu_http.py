"""`/v1/search` and `/v1/recommend` through HTTP with N workers on one box (the GPU check):

    python -m bench.gpu_http --repository REPO [--workers 8] [--concurrency 64,128,256]
        [--warm-s 2] [--measure-s 8] [--device auto] [--client auto|wrk|aiohttp] [--json FILE]

REPO is `bench/gpu_shop.py`'s. One `shopserve serve --workers N` (every worker its own ONNX
Runtime sessions: one CUDA context per worker, docs/gpu.md), then per endpoint and concurrency a
closed-loop run (wrk as in bench/workers.py, or bench/gpu_load.py's aiohttp processes where wrk
cannot run): requests/s, p50, p99, errors, the server's and the load generator's CPU. Also the
GPU memory of each worker process (nvidia-smi), the PSS of the tree, where each model runs (its
`/config` parameters) and the mean batch each model ran. Target (issue 12): >= 20,000 requests/s
per endpoint at p99 <= 10 ms with no errors.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from bench.gpu_shop import request_bodies
from bench.server_procs import ServerProcess, free_port
from bench.server_wrk import WrkResult, lua_script, run_wrk
from bench.workers_memory import children, tree_pss, wait_workers

__all__ = ["main"]

TARGET_RPS = 20_000
TARGET_P99_MS = 10.0
ENDPOINTS = ("search", "recommend")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, body, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def gpu_memory_mib(pids: list[int]) -> dict[str, int] | None:
    """GPU memory (MiB) per process of `pids` that holds some, from nvidia-smi; None without it."""
    if shutil.which("nvidia-smi") is None:
        return None
    cmd = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
    try:
        text = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in pids:
            out[parts[0]] = int(parts[1]) if parts[1].isdigit() else -1
    return out


class GpuUtilisation:
    """nvidia-smi sampling the GPU's busy fraction every 200 ms while a run lasts (None without
    nvidia-smi): with one CUDA context per worker and no MPS, kernels of different workers take
    turns, so this and the mean batch are what say whether one GPU-owning process would help."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> GpuUtilisation:
        if shutil.which("nvidia-smi"):
            cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                   "-lms", "200"]  # fmt: skip
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()

    def mean_pct(self) -> float | None:
        if self._proc is None:
            return None
        self._proc.terminate()
        text, _ = self._proc.communicate(timeout=10)
        values = [float(v) for v in text.split() if v.replace(".", "").isdigit()]
        return round(sum(values) / len(values), 1) if values else None


def _client(choice: str) -> str:
    if choice != "auto":
        return choice
    wrk = shutil.which("wrk")
    if wrk and subprocess.run([wrk, "-v"], capture_output=True, check=False).returncode in (0, 1):
        return "wrk"
    return "aiohttp"


def _cell(client: str, url: str, body_path: Path, c: int, seconds: float) -> WrkResult:
    if client == "wrk":
        script = body_path.with_suffix(".lua")
        script.write_text(lua_script(body_path))
        wrk = shutil.which("wrk") or "wrk"
        return run_wrk(wrk, url, script, concurrency=c, duration_s=int(seconds), cpu=None)
    from bench.gpu_load import run_aiohttp

    return run_aiohttp(url, body_path.read_bytes(), concurrency=c, duration_s=seconds)


def _models(base: str) -> dict:
    """Where each model runs (its /config parameters) and its mean batch so far."""
    out = {}
    stats = {s["name"]: s for s in _get(base + "/v2/models/stats")["model_stats"]}
    for name in ("search_encoder", "query_encoder"):
        params = _get(f"{base}/v2/models/{name}/config").get("parameters", {})
        s = stats.get(name, {})
        out[name] = {
            "device": params.get("device", {}).get("string_value"),
            "device_choice": params.get("device_choice", {}).get("string_value"),
            "mean_batch": round(
                s.get("inference_count", 0) / max(1, s.get("execution_count", 0)), 2
            ),
        }
    return out


def _start(args, workdir: Path, stack: ExitStack) -> tuple[ServerProcess, str]:
    port = free_port()
    (workdir / "settings.toml").write_text('log_level = "info"\nlog_format = "text"\n')
    cmd = [sys.executable, "-m", "server", "serve", "--model-repository", str(args.repository),
           "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "0",
           "--workers", str(args.workers), "--config", str(workdir / "settings.toml")]  # fmt: skip
    env = {"SHOPSERVE_DEVICE": args.device, "TMPDIR": str(workdir)}
    log = args.log or workdir / "server.log"
    srv = stack.enter_context(ServerProcess(cmd, cpu=None, env=env, log_path=log))
    if args.pid_file:  # the caller's last resort: the group to kill if this process is killed
        args.pid_file.write_text(str(srv.pid))
    base = f"http://127.0.0.1:{port}"
    srv.wait_ready(base + "/v2/health/ready", timeout_s=args.ready_timeout_s)
    wait_workers(workdir, args.workers, timeout_s=args.ready_timeout_s)
    return srv, base


def _measure(args, srv: ServerProcess, base: str, workdir: Path, client: str) -> list[dict]:
    rows = []
    bodies = request_bodies(args.repository)
    for endpoint in ENDPOINTS:
        body = json.dumps(bodies[endpoint]).encode()
        status, answer = _post(f"{base}/v1/{endpoint}", body)
        if status != 200:
            raise RuntimeError(f"/v1/{endpoint} answered {status}: {answer}")
        path = workdir / f"{endpoint}.json"
        path.write_bytes(body)
        for c in args.concurrency:
            if args.warm_s > 0:
                _cell(client, f"{base}/v1/{endpoint}", path, c, args.warm_s)
            cpu0 = srv.cpu_s()
            with GpuUtilisation() as gpu:
                res = _cell(client, f"{base}/v1/{endpoint}", path, c, args.measure_s)
                util = gpu.mean_pct()
            cpu = srv.cpu_s() - cpu0
            ok = res.errors == 0 and res.p99_ms <= TARGET_P99_MS
            rows.append({
                "endpoint": endpoint, "concurrency": c, "rps": round(res.rps, 1),
                "p50_ms": round(res.p50_ms, 3), "p99_ms": round(res.p99_ms, 3),
                "errors": res.errors, "server_cpu_pct": round(100 * cpu / res.duration_s, 1),
                "client_cpu_pct": round(100 * res.cpu_s / res.duration_s, 1),
                "gpu_util_pct": util, "within_p99": ok,
            })  # fmt: skip
            print(f"  /v1/{endpoint:<9} c={c:<4} rps={res.rps:9.1f} p50={res.p50_ms:6.2f} "
                  f"p99={res.p99_ms:6.2f} ms errors={res.errors}", file=sys.stderr, flush=True)  # fmt: skip
    return rows


def verdicts(rows: list[dict]) -> dict[str, dict]:
    """Per endpoint: the most requests/s of a run within the p99 target with no errors."""
    out = {}
    for endpoint in ENDPOINTS:
        ok = [r for r in rows if r["endpoint"] == endpoint and r["within_p99"]]
        best = max((r["rps"] for r in ok), default=0.0)
        out[endpoint] = {"best_rps_within_p99": best, "target_met": best >= TARGET_RPS}
    return out


def format_table(doc: dict) -> str:
    lines = [
        f"{doc['workers']} workers, device setting {doc['device_setting']}, client {doc['client']}",
        "| endpoint | connections | req/s | p50 ms | p99 ms | errors | server CPU % | client CPU % "
        "| GPU busy % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| /v1/{r['endpoint']} | {r['concurrency']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['errors']} | {r['server_cpu_pct']:.0f} | "
            f"{r['client_cpu_pct']:.0f} | {r.get('gpu_util_pct') if r.get('gpu_util_pct') is not None else '-'} |"
        )
    for endpoint, v in doc["verdicts"].items():
        met = "met" if v["target_met"] else "NOT met"
        lines.append(
            f"target /v1/{endpoint} >= {TARGET_RPS:,} req/s at p99 <= {TARGET_P99_MS:g} ms: "
            f"{met} (best {v['best_rps_within_p99']:,.0f})"
        )
    for name, m in doc["models"].items():
        lines.append(f"{name}: mean batch {m['mean_batch']}; {m['device_choice']}")
    lines.append(f"GPU memory per worker process (MiB): {doc['gpu_memory_mib']}")
    lines.append(f"PSS (MiB): {doc['pss']['total_mib']}")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_http", description=__doc__.split("\n")[0])
    p.add_argument("--repository", type=Path, required=True)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--concurrency", default="64,128,256")
    p.add_argument("--warm-s", type=float, default=2)
    p.add_argument("--measure-s", type=float, default=8)
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--client", choices=("auto", "wrk", "aiohttp"), default="auto")
    p.add_argument("--ready-timeout-s", type=float, default=240)
    p.add_argument("--log", type=Path, help="the server's log (default: a temp file)")
    p.add_argument("--pid-file", type=Path, help="the server's process group id, written here")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    a.concurrency = [int(c) for c in a.concurrency.split(",") if c]
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    # `timeout` sends SIGTERM: unwind, so that the server (its own session) is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    client = _client(args.client)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shopserve-gpu-http-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        srv, base = _start(args, workdir, stack)
        started_s = round(time.monotonic() - t0, 1)
        pids = [srv.pid, *children(srv.pid)]
        doc: dict = {"workers": args.workers, "device_setting": args.device, "client": client,
                     "start_s": started_s, "gpu_memory_mib": gpu_memory_mib(pids),
                     "pss": tree_pss(srv.pid), "cores": os.cpu_count()}  # fmt: skip
        doc["rows"] = _measure(args, srv, base, workdir, client)
        doc["models"] = _models(base)
    doc["verdicts"] = verdicts(doc["rows"])
    print(format_table(doc))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
