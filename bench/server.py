"""`shopserve bench server [--json FILE] [--quick]`: issue 2's server benchmark.

At concurrency 1, 8 and 64 over loopback, in one run, for the small MLP and a MiniLM-sized
encoder, it measures `direct` (the ORT session in-process), `noop` (shopserve's stack answering a
no-model route: the HTTP floor), `unbatched` and `batched` (shopserve with dynamic batching off
and on), `grpc` (the batched model over shopserve's V2 gRPC endpoint, driven by perf_analyzer
-i grpc or a tritonclient.grpc loop: bench/server_grpc.py) and `litserve` (the same ONNX model
behind LitServe with its batching on, set like ours).
Every server runs pinned to one core (`--server-cpu`), wrk to another (`--client-cpu`). All
servers are started first; then for each (model, concurrency) the variants run back to back, each
a warm-up wrk run and then a measured one, so background load weighs on a cell's variants alike. Prints one table (rows, ratios, targets met or not)
and writes it as JSON. See docs/performance.md, section "Server", for the method.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench.server_grpc import grpc_load_generator, run_client_loop, run_perf_analyzer_grpc
from bench.server_models import MODELS, build_bench_repository, encoder_available
from bench.server_procs import ServerProcess, core_busy_s, free_port, load_snapshot
from bench.server_report import VARIANTS, evaluate_targets, format_table, ratios
from bench.server_wrk import ensure_wrk, lua_script, run_wrk

__all__ = ["main", "parse_args"]

FULL = {"warm_s": 5, "measure_s": 10}
QUICK = {"warm_s": 1, "measure_s": 2}
CONCURRENCY = (1, 8, 64)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="shopserve bench server", description=__doc__.split("\n")[0])
    p.add_argument("--json", type=Path, default=None, help="write rows, ratios and targets here")
    p.add_argument("--quick", action="store_true", help="~3 s per cell instead of 15 s")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: mlp,encoder")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    p.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    p.add_argument("--warm-s", type=int, default=None, help="override the warm-up per cell")
    p.add_argument("--measure-s", type=int, default=None, help="override the measure per cell")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    p.add_argument(
        "--grpc-client",
        choices=("auto", "perf_analyzer", "loop"),
        default="auto",
        help="the gRPC row's load generator (auto: perf_analyzer when it can be had)",
    )
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.variants = [v for v in args.variants.split(",") if v]
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    bad = [m for m in args.models if m not in MODELS] + [
        v for v in args.variants if v not in VARIANTS
    ]
    if bad:
        p.error(f"unknown model/variant {bad}; models {list(MODELS)}, variants {list(VARIANTS)}")
    mode = QUICK if args.quick else FULL
    args.warm_s = mode["warm_s"] if args.warm_s is None else args.warm_s
    args.measure_s = mode["measure_s"] if args.measure_s is None else args.measure_s
    return args


def _v2_body(key: str) -> bytes:
    m = MODELS[key]
    x = m.example_row()
    t = {"name": m.input_name, "shape": list(x.shape), "datatype": m.v2_datatype}
    return json.dumps({"inputs": [{**t, "data": x.ravel().tolist()}]}).encode()


class _Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, wrk: str, pa=None) -> None:
        self.pa = pa  # perf_analyzer for the gRPC row; None: the tritonclient loop
        self.args = args
        self.workdir = workdir
        self.wrk = wrk
        self.rows: list[dict] = []
        self.cells: dict[tuple[str, str, int], dict] = {}
        self.scripts: dict[str, Path] = {}
        self.ceilings: dict[str, dict] = {}
        for key in args.models:
            body = workdir / f"{key}.json"
            body.write_bytes(_v2_body(key))
            self.scripts[key] = workdir / f"{key}.lua"
            self.scripts[key].write_text(lua_script(body))

    def _record(
        self, model: str, variant: str, c: int, rps: float, p50: float, p99: float, meta: dict
    ) -> None:
        row = {
            "variant": variant,
            "model": model,
            "concurrency": c,
            "rps": round(rps, 1),
            "p50_ms": round(p50, 3),
            "p99_ms": round(p99, 3),
        }
        self.rows.append(row)
        self.cells[(model, variant, c)] = meta
        print(
            f"  {model:<8} {variant:<10} c={c:<3} rps={rps:9.1f} p50={p50:8.3f} ms "
            f"p99={p99:8.3f} ms errors={meta.get('errors', 0)}",
            file=sys.stderr,
            flush=True,
        )

    def http_cell(self, server: ServerProcess, variant: str, model: str, url: str, c: int) -> None:
        a = self.args
        cores = (a.server_cpu, a.client_cpu)
        kw = {"concurrency": c, "cpu": a.client_cpu}
        if a.warm_s > 0:
            run_wrk(self.wrk, url, self.scripts[model], duration_s=a.warm_s, **kw)
        srv0, busy0 = server.cpu_s(), core_busy_s(cores)
        res = run_wrk(self.wrk, url, self.scripts[model], duration_s=a.measure_s, **kw)
        srv, busy = server.cpu_s() - srv0, core_busy_s(cores) - busy0
        pct = 100.0 / res.duration_s
        meta = {
            "errors": res.errors,
            "requests": res.requests,
            "server_cpu_pct": srv * pct,
            "client_cpu_pct": res.cpu_s * pct,
            "other_cpu_pct": max(0.0, busy - srv - res.cpu_s) * pct,
            "req_per_server_cpu_s": res.rps * res.duration_s / srv if srv > 0 else None,
        }
        self._record(model, variant, c, res.rps, res.p50_ms, res.p99_ms, meta)

    def grpc_cell(self, server: ServerProcess, model: str, url: str, c: int) -> None:
        """The gRPC row. CPU shares are over the client's whole run (perf_analyzer's start and
        windows; the loop's start, warm-up and measure), so they run a little low."""
        a = self.args
        cores = (a.server_cpu, a.client_cpu)
        srv0, busy0, t0 = server.cpu_s(), core_busy_s(cores), time.monotonic()
        if self.pa is not None:
            res = run_perf_analyzer_grpc(self.pa, url, MODELS[model], c, a.measure_s, a.client_cpu)
        else:
            res = run_client_loop(url, model, c, a.warm_s, a.measure_s, a.client_cpu)
        wall = time.monotonic() - t0
        srv, busy = server.cpu_s() - srv0, core_busy_s(cores) - busy0
        pct = 100.0 / wall
        meta = {
            "errors": res.errors,
            "requests": res.requests,
            "client": "perf_analyzer" if self.pa is not None else "tritonclient.grpc.aio",
            "server_cpu_pct": srv * pct,
            "client_cpu_pct": res.cpu_s * pct,
            "other_cpu_pct": max(0.0, busy - srv - res.cpu_s) * pct,
            "req_per_server_cpu_s": res.rps * wall / srv if srv > 0 else None,
        }
        self._record(model, "grpc", c, res.rps, res.p50_ms, res.p99_ms, meta)

    def _direct(self, model: str, onnx_path: Path, c: int, rows: int, warm_s: float,
                measure_s: float) -> dict:  # fmt: skip
        m = MODELS[model]
        shape = ",".join(map(str, (rows, *m.row_shape)))
        cmd = [sys.executable, "-m", "bench.server_direct", "--model", str(onnx_path),
               "--datatype", m.v2_datatype, "--shape", shape,
               "--concurrency", str(c), "--warm-s", str(warm_s),
               "--measure-s", str(measure_s)]  # fmt: skip
        out = subprocess.run(["taskset", "-c", str(self.args.server_cpu), *cmd],
                             capture_output=True, text=True, check=True,
                             timeout=warm_s + measure_s + 120)  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])

    def ceiling(self, model: str, onnx_path: Path, rows: int = 64) -> None:
        """What batching can gain in compute alone: ORT rows per CPU-second at `rows` rows per
        call over one row per call, one thread, on the server core."""
        t = max(2.0, min(4.0, self.args.measure_s))
        one = self._direct(model, onnx_path, 1, 1, 0.5, t)
        many = self._direct(model, onnx_path, 1, rows, 0.5, t)
        # from the thread CPU time of the median call: on a shared core a 1 s batch call is
        # preempted many times and a 10 ms one mostly not, so wall time would favour batch 1
        r1 = 1e3 / one["call_cpu_p50_ms"] if one["call_cpu_p50_ms"] else 0.0
        rn = rows * 1e3 / many["call_cpu_p50_ms"] if many["call_cpu_p50_ms"] else 0.0
        self.ceilings[model] = {"rows": rows, "rows_per_s_batch1": r1,
                                f"rows_per_s_batch{rows}": rn, "gain": rn / r1 if r1 else 0.0}  # fmt: skip
        print(
            f"  {model:<8} compute ceiling: batch {rows} gives {rn / r1:.2f}x the rows per CPU-s of "
            f"batch 1 ({rn:.0f} vs {r1:.0f})",
            file=sys.stderr,
            flush=True,
        )

    def direct_cell(self, model: str, onnx_path: Path, c: int) -> None:
        a = self.args
        cores = (a.server_cpu, a.client_cpu)
        busy0 = core_busy_s(cores)
        d = self._direct(model, onnx_path, c, 1, a.warm_s, a.measure_s)
        busy = core_busy_s(cores) - busy0
        pct = 100.0 / d["duration_s"]
        meta = {
            "errors": 0,
            "requests": d["requests"],
            "server_cpu_pct": d["cpu_s"] * pct,
            "client_cpu_pct": None,
            # busy time of both cores over the whole process (warm-up and imports included)
            "other_cpu_pct": None,
            "both_cores_busy_pct": busy * 100.0 / (a.warm_s + a.measure_s),
            "req_per_server_cpu_s": d["requests"] / d["cpu_s"] if d["cpu_s"] > 0 else None,
        }
        rps = d["requests"] / d["duration_s"]
        self._record(model, "direct", c, rps, d["p50_ms"], d["p99_ms"], meta)


def _start(cmd: list[str], ready_url: str, cpu: int, log: Path,
           env: dict[str, str] | None = None) -> ServerProcess:  # fmt: skip
    proc = ServerProcess(cmd, cpu=cpu, env=env, log_path=log)
    proc.wait_ready(ready_url, timeout_s=180)
    return proc


def _start_servers(args: argparse.Namespace, workdir: Path, repo: Path,
                   stack: ExitStack) -> dict[tuple[str, str], tuple[ServerProcess, str]]:  # fmt: skip
    """Every HTTP server of the run, started up front (all pinned to the server core, idle ones
    cost nothing) so that each cell can measure its variants back to back: on a shared machine
    the background load then weighs on all variants of a cell alike."""
    a, py, host = args, sys.executable, "http://127.0.0.1"
    urls: dict[tuple[str, str], tuple[ServerProcess, str]] = {}
    if "noop" in a.variants:
        port = free_port()
        srv = stack.enter_context(_start(
            [py, "-m", "bench.server_noop", "--port", str(port)],
            f"{host}:{port}/v2/health/live", a.server_cpu, workdir / "noop.log",
            {"SHOPSERVE_LOG_LEVEL": "warning"}))  # fmt: skip
        for key in a.models:
            urls[(key, "noop")] = (srv, f"{host}:{port}/v2/models/{key}/noop")
    if {"unbatched", "batched", "grpc"} & set(a.variants):
        port, grpc_port = free_port(), free_port() if "grpc" in a.variants else 0
        cmd = [py, "-m", "server", "serve", "--model-repository", str(repo),
               "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port)]  # fmt: skip
        srv = stack.enter_context(_start(
            cmd, f"{host}:{port}/v2/health/ready", a.server_cpu, workdir / "shopserve.log",
            {"SHOPSERVE_DEVICE": "cpu", "SHOPSERVE_LOG_LEVEL": "warning"}))  # fmt: skip
        for key in a.models:
            name = MODELS[key].name
            urls[(key, "batched")] = (srv, f"{host}:{port}/v2/models/{name}/infer")
            urls[(key, "unbatched")] = (srv, f"{host}:{port}/v2/models/{name}_unbatched/infer")
            urls[(key, "grpc")] = (srv, f"127.0.0.1:{grpc_port}")
    if "litserve" in a.variants:
        for key in a.models:
            m, port = MODELS[key], free_port()
            cmd = [py, "-m", "bench.server_litserve", "--port", str(port),
                   "--model", str(repo / m.name / "1" / "model.onnx"),
                   "--max-batch-size", str(m.max_batch_size),
                   "--batch-timeout-s", str(m.max_queue_delay_us / 1e6)]  # fmt: skip
            srv = stack.enter_context(
                _start(cmd, f"{host}:{port}/health", a.server_cpu, workdir / f"litserve-{key}.log")
            )
            urls[(key, "litserve")] = (srv, f"{host}:{port}/predict")
    time.sleep(1.0)  # let start-up work (imports, warm-up threads) settle
    return urls


def _run(args: argparse.Namespace, bench: _Bench, repo: Path) -> None:
    with ExitStack() as stack:
        urls = _start_servers(args, bench.workdir, repo, stack)
        for key in args.models:
            onnx_path = repo / MODELS[key].name / "1" / "model.onnx"
            if "direct" in args.variants:
                bench.ceiling(key, onnx_path, rows=max(args.concurrency))
            for c in args.concurrency:
                for variant in VARIANTS:
                    if variant not in args.variants:
                        continue
                    if variant == "direct":
                        bench.direct_cell(key, onnx_path, c)
                    elif variant == "grpc":
                        srv, url = urls[(key, variant)]
                        bench.grpc_cell(srv, key, url, c)
                    else:
                        srv, url = urls[(key, variant)]
                        bench.http_cell(srv, variant, key, url, c)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in (
        "onnxruntime-gpu",
        "litestar",
        "uvicorn",
        "httptools",
        "uvloop",
        "litserve",
        "grpcio",
        "tritonclient",
        "torch",
        "transformers",
    ):
        with suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    wrk = ensure_wrk(install=not args.no_install)
    if wrk is None:
        print("bench server: wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    if "encoder" in args.models and (why := encoder_available()):
        print(f"bench server: skipping the encoder: {why}", file=sys.stderr)
        args.models = [m for m in args.models if m != "encoder"]
    before = load_snapshot(os.getpid())
    print(f"load before: {before}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shopserve-bench-") as tmp:
        workdir = Path(tmp)
        repo = build_bench_repository(workdir / "repository", args.models)
        bench = _Bench(args, workdir, wrk, grpc_load_generator(args))
        _run(args, bench, repo)
    after = load_snapshot(os.getpid())
    table = format_table(bench.rows, bench.cells)
    print(table)
    for key, ceil in bench.ceilings.items():
        print(
            f"compute ceiling, {key}: ORT at batch {ceil['rows']} runs {ceil['gain']:.2f}x the "
            f"rows per CPU-second of batch 1 on one thread (what batching can gain in compute)"
        )
    print(
        f"\nload before: {before}\nload after:  {after}\n"
        f"({time.monotonic() - t0:.0f} s; warm {args.warm_s} s + measure {args.measure_s} s "
        f"per cell; server on cpu {args.server_cpu}, wrk on cpu {args.client_cpu})"
    )
    if args.json:
        doc = {
            "rows": bench.rows,
            "compute_ceilings": bench.ceilings,
            "ratios": ratios(bench.rows),
            "targets": [
                {
                    "model": t.model,
                    "target": t.name,
                    "wanted": t.wanted,
                    "got": t.got,
                    "verdict": t.verdict,
                }
                for t in evaluate_targets(bench.rows)
            ],
            "cells": [
                {"model": k[0], "variant": k[1], "concurrency": k[2], **v}
                for k, v in bench.cells.items()
            ],
            "settings": {
                "warm_s": args.warm_s,
                "measure_s": args.measure_s,
                "server_cpu": args.server_cpu,
                "client_cpu": args.client_cpu,
                "cpus": os.cpu_count(),
                "argv": sys.argv,
            },
            "load": {"before": before, "after": after},
            "versions": _versions(),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1))
    return 0
