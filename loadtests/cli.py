"""`shopserve loadtest`: Locust headless for a bounded time against a running server (`--host`)
or one it starts itself, then Locust's CSVs, `report.html`, `latency.png`, a table, and a
non-zero exit when the SLO file is violated."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from loadtests.report import check_slo, plot_latency, read_stats, render_table
from loadtests.serve import free_port, serve_command, wait_ready

__all__ = ["main"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def _start_server(repo: Path, config: Path | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    extra = ["--config", str(config)] if config is not None else []
    proc = subprocess.Popen(
        serve_command(repo, port, extra),
        env={**os.environ, "SHOPSERVE_LOG_LEVEL": os.environ.get("SHOPSERVE_LOG_LEVEL", "warning")},
    )
    url = f"http://127.0.0.1:{port}"
    if wait_ready(proc, url, 300, 0.2):
        return proc, url
    if proc.poll() is not None:
        raise SystemExit(f"shopserve loadtest: the server exited with {proc.returncode}")
    proc.kill()
    raise SystemExit("shopserve loadtest: the server did not become ready in 300 s")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="shopserve loadtest", description=__doc__)
    p.add_argument(
        "--host", help="server URL; when absent a server is started on a free loopback port"
    )
    p.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    p.add_argument("--server-config", type=Path, help="settings TOML for the server started here")
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--spawn-rate", type=float, default=10)
    p.add_argument("--duration", type=int, default=30, help="seconds (bounded: at most 3600)")
    p.add_argument("--slo", type=Path)
    p.add_argument("--report", type=Path, default=Path("reports/loadtest"))
    p.add_argument(
        "--mix", help='endpoint weights, e.g. "recommend=50,search=30,classify=15,score=5"'
    )
    p.add_argument("--v2-weight", type=int, default=0, help="weight of the raw V2 user (0: off)")
    p.add_argument("--v2-model", default="mlp")
    args = p.parse_args(argv)
    if not 1 <= args.duration <= 3600:
        p.error("--duration must be within 1..3600 s")
    args.report.mkdir(parents=True, exist_ok=True)
    server = None
    host = args.host
    if host is None:
        server, host = _start_server(args.model_repository, args.server_config)
    env = {
        **os.environ,
        "SHOPSERVE_V2_WEIGHT": str(args.v2_weight),
        "SHOPSERVE_V2_MODEL": args.v2_model,
    }
    env["PYTHONPATH"] = (
        str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    )
    if args.mix:
        env["SHOPSERVE_MIX"] = args.mix
    prefix = args.report / "locust"
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        str(args.users),
        "-r",
        str(args.spawn_rate),
        "-t",
        f"{args.duration}s",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--csv-full-history",
        "--html",
        str(args.report / "report.html"),
        "--stop-timeout",
        "5",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    try:
        run = subprocess.run(cmd, env=env, timeout=args.duration + 120)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    if run.returncode != 0:
        print(f"shopserve loadtest: locust exited with {run.returncode}", file=sys.stderr)
        return run.returncode
    rows = read_stats(prefix)
    plot_latency(prefix, args.report / "latency.png")
    print(render_table(rows))
    print(f"report: {args.report}/ (locust_*.csv, report.html, latency.png)")
    if args.slo is not None:
        problems = check_slo(rows, args.slo)
        for problem in problems:
            print(f"SLO violated: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"SLO met: {args.slo}")
    return 0
