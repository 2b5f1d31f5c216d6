"""The bench's gRPC row: shopserve's V2 gRPC endpoint (batched model), driven by Triton's
`perf_analyzer -i grpc` (C++, closed loop: `--concurrency-range c:c`) when it can be had (see
bench/server_perf_analyzer.py), else by a closed loop of `tritonclient.grpc.aio` calls in one
process (`python -m bench.server_grpc`, pinned to the client core), which spends far more CPU
per request than perf_analyzer and so may bound the row at high concurrency (the table's gen_cpu%
column shows it).

Both send the row of `BenchModel.example_row()` shape as `raw_input_contents` (what Triton's
clients send). perf_analyzer measures windows of `measure_s / 3` s until three agree (every window
is accepted: this machine is shared, see tests/bench/test_perf_analyzer.py), and reports the last
three: its rps is theirs, and its p50/p99 are over their requests.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.server_models import MODELS, BenchModel
from bench.server_wrk import WrkResult

__all__ = [
    "grpc_load_generator",
    "parse_perf_analyzer_csv",
    "run_client_loop",
    "run_perf_analyzer_grpc",
]

_MARK = "SHOPSERVE_GRPC "


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def parse_perf_analyzer_csv(text: str, duration_s: float) -> WrkResult:
    """perf_analyzer's `-f` CSV (latencies in us) as a result over `duration_s` of windows."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise ValueError(f"no perf_analyzer row in {text[-300:]!r}")
    r = rows[-1]
    rps = float(r["Inferences/Second"])
    return WrkResult(
        requests=round(rps * duration_s),
        duration_s=duration_s,
        p50_ms=float(r["p50 latency"]) / 1e3,
        p99_ms=float(r["p99 latency"]) / 1e3,
        errors=0,  # perf_analyzer stops with an error on a failed request
    )


def grpc_load_generator(args: argparse.Namespace):
    """perf_analyzer for the gRPC row, or None for the tritonclient loop."""
    if "grpc" not in args.variants or args.grpc_client == "loop":
        return None
    from bench.server_perf_analyzer import ensure_perf_analyzer

    pa = ensure_perf_analyzer()
    if isinstance(pa, str):
        if args.grpc_client == "perf_analyzer":
            raise SystemExit(f"bench server: {pa}")
        print(f"bench server: gRPC row by the tritonclient loop: {pa}", file=sys.stderr)
        return None
    return pa


def run_perf_analyzer_grpc(
    pa, url: str, model: BenchModel, c: int, measure_s: int, cpu: int | None
) -> WrkResult:
    """One perf_analyzer run at concurrency `c`; its CPU time counted as the client's."""
    window_ms = max(500, int(measure_s * 1000 / 3))
    with tempfile.TemporaryDirectory(prefix="shopserve-pa-") as tmp:
        out = Path(tmp) / "pa.csv"
        args = ["-m", model.name, "-u", url, "-i", "grpc",
                "--concurrency-range", f"{c}:{c}", "--measurement-interval", str(window_ms),
                "--stability-percentage", "100", "--max-trials", "3",
                "--shape", f"{model.input_name}:{','.join(map(str, model.row_shape))}",
                "-f", str(out)]  # fmt: skip
        cpu0 = _children_cpu_s()
        res = pa.run(args, timeout_s=60 + 20 * measure_s, cpu=cpu)
        if res.returncode != 0:
            raise RuntimeError(f"perf_analyzer -i grpc failed: {(res.stdout + res.stderr)[-800:]}")
        r = parse_perf_analyzer_csv(out.read_text(), 3 * window_ms / 1e3)
    return WrkResult(r.requests, r.duration_s, r.p50_ms, r.p99_ms, 0, _children_cpu_s() - cpu0)


def run_client_loop(
    url: str, model: str, c: int, warm_s: int, measure_s: int, cpu: int | None
) -> WrkResult:
    """The tritonclient.grpc.aio loop in a subprocess pinned to `cpu`."""
    cmd = [sys.executable, "-m", "bench.server_grpc", "--url", url, "--model", model,
           "--concurrency", str(c), "--warm-s", str(warm_s), "--measure-s", str(measure_s)]  # fmt: skip
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    cpu0 = _children_cpu_s()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=warm_s + measure_s + 120, check=False
    )
    cpu_s = _children_cpu_s() - cpu0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"gRPC client loop failed: {(proc.stdout + proc.stderr)[-800:]}")
    d = json.loads(line[len(_MARK) :])
    return WrkResult(d["requests"], d["duration_s"], d["p50_ms"], d["p99_ms"], d["errors"], cpu_s)


async def _loop(url: str, key: str, c: int, warm_s: float, measure_s: float) -> dict:
    import tritonclient.grpc.aio as grpcclient

    m = MODELS[key]
    x = m.example_row()
    client = grpcclient.InferenceServerClient(url)
    inp = grpcclient.InferInput(m.input_name, list(x.shape), m.v2_datatype)
    inp.set_data_from_numpy(x)
    latencies: list[float] = []
    errors = 0
    t_start = time.perf_counter()
    t_measure, t_end = t_start + warm_s, t_start + warm_s + measure_s

    async def worker() -> None:
        nonlocal errors
        while (t0 := time.perf_counter()) < t_end:
            try:
                await client.infer(m.name, [inp])
            except Exception:
                errors += t0 >= t_measure
                continue
            if t0 >= t_measure:
                latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(c)))
    await client.close()
    lat = np.array(latencies) * 1e3 if latencies else np.zeros(1)
    return {"requests": len(latencies) + errors, "duration_s": measure_s, "errors": errors,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.server_grpc")
    p.add_argument("--url", required=True, help="host:port of the gRPC endpoint")
    p.add_argument("--model", default="mlp", choices=list(MODELS))
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--warm-s", type=float, default=1.0)
    p.add_argument("--measure-s", type=float, default=2.0)
    a = p.parse_args(argv)
    d = asyncio.run(_loop(a.url, a.model, a.concurrency, a.warm_s, a.measure_s))
    print(_MARK + json.dumps(d), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
