"""`shopserve bench server [--json FILE] [--quick]`: issue 2's server benchmark.

At concurrency 1, 8 and 64 over loopback, in one run, for the small MLP and a MiniLM-sized
encoder, it measures `direct` (the ORT session in-process), `noop` (shopserve's stack answering a
no-model route: the HTTP floor), `unbatched` and `batched` (shopserve with dynamic batching off
and on) and `litserve` (the same ONNX model behind LitServe with its batching on, set like ours).
Every server runs pinned to one core (`--server-cpu`), wrk to another (`--client-cpu`); each cell
is a warm-up wrk run and then a measured one. Prints one table (rows, ratios, targets met or not)
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
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

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
    def __init__(self, args: argparse.Namespace, workdir: Path, wrk: str) -> None:
        self.args = args
        self.workdir = workdir
        self.wrk = wrk
        self.rows: list[dict] = []
        self.cells: dict[tuple[str, str, int], dict] = {}
        self.scripts: dict[str, Path] = {}
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

    def http_cells(self, server: ServerProcess, variant: str, model: str, url: str) -> None:
        a = self.args
        cores = (a.server_cpu, a.client_cpu)
        for c in a.concurrency:
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
            }
            self._record(model, variant, c, res.rps, res.p50_ms, res.p99_ms, meta)

    def direct_cells(self, model: str, onnx_path: Path) -> None:
        a = self.args
        m = MODELS[model]
        for c in a.concurrency:
            cmd = [
                sys.executable,
                "-m",
                "bench.server_direct",
                "--model",
                str(onnx_path),
                "--datatype",
                m.v2_datatype,
                "--shape",
                ",".join(map(str, (1, *m.row_shape))),
                "--concurrency",
                str(c),
                "--warm-s",
                str(a.warm_s),
                "--measure-s",
                str(a.measure_s),
            ]
            busy0 = core_busy_s((a.server_cpu, a.client_cpu))
            out = subprocess.run(
                ["taskset", "-c", str(a.server_cpu), *cmd],
                capture_output=True,
                text=True,
                check=True,
                timeout=a.warm_s + a.measure_s + 120,
            )
            busy = core_busy_s((a.server_cpu, a.client_cpu)) - busy0
            d = json.loads(out.stdout.strip().splitlines()[-1])
            total = a.warm_s + a.measure_s
            meta = {
                "errors": 0,
                "requests": d["requests"],
                # the whole process's share over warm + measure (imports included)
                "other_cpu_pct": None,
                "server_cpu_pct": None,
                "client_cpu_pct": None,
                "busy_cpu_pct": busy * 100.0 / total,
            }
            self._record(
                model, "direct", c, d["requests"] / d["duration_s"], d["p50_ms"], d["p99_ms"], meta
            )


@contextmanager
def _server(
    cmd: list[str], ready_url: str, cpu: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    proc = ServerProcess(cmd, cpu=cpu, env=env, log_path=log)
    try:
        proc.wait_ready(ready_url, timeout_s=180)
        time.sleep(0.5)  # let start-up work (imports, warm-up threads) settle
        yield proc
    finally:
        proc.stop()


def _run(args: argparse.Namespace, bench: _Bench, repo: Path) -> None:
    a, w, py = args, bench.workdir, sys.executable
    models = a.models
    if "direct" in a.variants:
        for key in models:
            bench.direct_cells(key, repo / MODELS[key].name / "1" / "model.onnx")
    if "noop" in a.variants:
        port = free_port()
        cmd = [py, "-m", "bench.server_noop", "--port", str(port)]
        env = {"SHOPSERVE_LOG_LEVEL": "warning"}
        with _server(
            cmd, f"http://127.0.0.1:{port}/v2/health/live", a.server_cpu, w / "noop.log", env
        ) as srv:
            for key in models:
                bench.http_cells(srv, "noop", key, f"http://127.0.0.1:{port}/v2/models/{key}/noop")
    if {"unbatched", "batched"} & set(a.variants):
        port = free_port()
        cmd = [
            py,
            "-m",
            "server",
            "serve",
            "--model-repository",
            str(repo),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        env = {"SHOPSERVE_DEVICE": "cpu", "SHOPSERVE_LOG_LEVEL": "warning"}
        with _server(
            cmd, f"http://127.0.0.1:{port}/v2/health/ready", a.server_cpu, w / "shopserve.log", env
        ) as srv:
            for key in models:
                for variant in ("unbatched", "batched"):
                    if variant in a.variants:
                        name = MODELS[key].name + ("_unbatched" if variant == "unbatched" else "")
                        url = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
                        bench.http_cells(srv, variant, key, url)
    if "litserve" in a.variants:
        for key in models:
            m, port = MODELS[key], free_port()
            cmd = [
                py,
                "-m",
                "bench.server_litserve",
                "--port",
                str(port),
                "--model",
                str(repo / m.name / "1" / "model.onnx"),
                "--max-batch-size",
                str(m.max_batch_size),
                "--batch-timeout-s",
                str(m.max_queue_delay_us / 1e6),
            ]
            with _server(
                cmd, f"http://127.0.0.1:{port}/health", a.server_cpu, w / f"litserve-{key}.log"
            ) as srv:
                bench.http_cells(srv, "litserve", key, f"http://127.0.0.1:{port}/predict")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in (
        "onnxruntime-gpu",
        "litestar",
        "uvicorn",
        "httptools",
        "uvloop",
        "litserve",
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
        bench = _Bench(args, workdir, wrk)
        _run(args, bench, repo)
    after = load_snapshot(os.getpid())
    table = format_table(bench.rows, bench.cells)
    print(table)
    print(
        f"\nload before: {before}\nload after:  {after}\n"
        f"({time.monotonic() - t0:.0f} s; warm {args.warm_s} s + measure {args.measure_s} s "
        f"per cell; server on cpu {args.server_cpu}, wrk on cpu {args.client_cpu})"
    )
    if args.json:
        doc = {
            "rows": bench.rows,
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
