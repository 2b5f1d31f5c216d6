"""`shopserve loadtest`: Locust headless for a bounded time against a running server (`--host`)
or one it starts itself, then Locust's CSVs, `report.html`, `latency.png` (latency per endpoint
with its SLO line, requests/s and error rate beside), a table, and a non-zero exit when the SLO
file is violated. `--find-max` instead searches for the highest user count that meets the SLOs
(see `loadtests.findmax`). The mix is the storefront's, restricted to the endpoints the server
serves (`GET /v1/pipelines`)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from loadtests.findmax import FindMaxConfig, run_find_max
from loadtests.locust_run import LocustRun, run_locust
from loadtests.mix import (
    DEFAULT_MIX,
    format_mix,
    load_average_note,
    parse_mix,
    pipeline_rows,
    served_classify_tasks,
    served_endpoints,
    served_mix,
)
from loadtests.plot import plot_report
from loadtests.report import check_slo, load_slo, read_stats, render_table
from loadtests.serve import free_port, serve_command, wait_ready

__all__ = ["main"]

DEFAULT_SLO = Path(__file__).with_name("slo.toml")


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


def _stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shopserve loadtest", description=__doc__)
    p.add_argument(
        "--host", help="server URL; when absent a server is started on a free loopback port"
    )
    p.add_argument(
        "--server-pid", type=int, help="with --host: the server's pid, to record its CPU too"
    )
    p.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    p.add_argument("--server-config", type=Path, help="settings TOML for the server started here")
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--spawn-rate", type=float, default=10)
    p.add_argument("--duration", type=int, default=30, help="seconds (bounded: at most 3600)")
    p.add_argument(
        "--slo",
        type=Path,
        help=f"checked when given; drawn on the plot (default {DEFAULT_SLO.name})",
    )
    p.add_argument("--report", type=Path, default=Path("reports/loadtest"))
    p.add_argument("--mix", help=f'endpoint weights (default "{DEFAULT_MIX}")')
    p.add_argument("--v2-weight", type=int, default=0, help="weight of the raw V2 user (0: off)")
    p.add_argument("--v2-model", default="mlp")
    g = p.add_argument_group("--find-max")
    g.add_argument(
        "--find-max", action="store_true", help="search the highest user count that meets every SLO"
    )
    g.add_argument(
        "--step-duration", type=int, default=45, help="measured seconds per step (5..600)"
    )
    g.add_argument(
        "--warmup", type=int, default=10, help="seconds per step before measuring (0..120)"
    )
    g.add_argument("--start-users", type=int, default=2)
    g.add_argument("--max-users", type=int, default=64, help="at most 1000")
    g.add_argument("--max-steps", type=int, default=10, help="at most 30")
    g.add_argument(
        "--resolution",
        type=float,
        default=0.1,
        help="stop bisecting at this fraction of the answer",
    )
    return p


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 1 <= args.duration <= 3600:
        p.error("--duration must be within 1..3600 s")
    if not 5 <= args.step_duration <= 600:
        p.error("--step-duration must be within 5..600 s")
    if not 0 <= args.warmup <= 120:
        p.error("--warmup must be within 0..120 s")
    if not 1 <= args.start_users <= args.max_users <= 1000:
        p.error("need 1 <= --start-users <= --max-users <= 1000")
    if not 1 <= args.max_steps <= 30:
        p.error("--max-steps must be within 1..30")
    if not 0 <= args.resolution < 1:
        p.error("--resolution must be within [0, 1)")


def _mix_for(args: argparse.Namespace, host: str) -> tuple[list[str], str, dict[str, str]]:
    """The endpoints to load, the mix string (the chosen weights restricted to what the server
    serves) and the locustfile's environment (the classify tasks served, the V2 share)."""
    weights = parse_mix(args.mix or DEFAULT_MIX)
    env = {"SHOPSERVE_V2_WEIGHT": str(args.v2_weight), "SHOPSERVE_V2_MODEL": args.v2_model}
    try:
        rows = pipeline_rows(host)
    except OSError as e:  # a server without /v1/pipelines: take the mix as given
        print(f"warning: GET /v1/pipelines failed ({e}); using the mix as given", file=sys.stderr)
        rows = None
    endpoints = list(weights) if rows is None else served_endpoints(rows)
    missing = [e for e in weights if e not in endpoints]
    if missing:
        print(f"not served here (no READY pipeline), left out of the mix: {', '.join(missing)}")
    mix = served_mix(weights, endpoints)
    if not mix:
        raise SystemExit("shopserve loadtest: the server serves none of the mix's endpoints")
    if rows is not None and "classify" in mix:
        tasks = served_classify_tasks(rows)
        print(f"classify tasks served here, and sent: {', '.join(tasks) or 'none'}")
        env["SHOPSERVE_CLASSIFY_TASKS"] = ",".join(tasks)
    return list(mix), format_mix(mix), env


def _plain_run(
    args: argparse.Namespace, host: str, server_pid: int | None, mix: str, env: dict[str, str]
) -> int:
    run = LocustRun(
        host=host,
        users=args.users,
        spawn_rate=args.spawn_rate,
        duration_s=args.duration,
        report_dir=args.report,
        mix=mix,
        env=env,
        server_pid=server_pid,
    )
    usage = run_locust(run)
    if usage.returncode != 0:
        print(f"shopserve loadtest: locust exited with {usage.returncode}", file=sys.stderr)
        return usage.returncode
    rows = read_stats(run.prefix)
    plot_report(run.prefix, args.report / "latency.png", load_slo(args.slo or DEFAULT_SLO))
    print(render_table(rows))
    print(
        f"CPU cores over the run: locust {usage.locust_cores:.2f}, server {usage.server_cores:.2f}"
        " (nan: not started here)"
    )
    print(f"report: {args.report}/ (locust_*.csv, report.html, latency.png)")
    if args.slo is not None:
        problems = check_slo(rows, args.slo)
        for problem in problems:
            print(f"SLO violated: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"SLO met: {args.slo}")
    return 0


def _find_max(args: argparse.Namespace, host: str, server_pid: int | None) -> int:
    endpoints, mix, env = _mix_for(args, host)
    cfg = FindMaxConfig(
        host=host,
        endpoints=endpoints,
        mix=mix,
        slo=load_slo(args.slo or DEFAULT_SLO),
        report_dir=args.report,
        step_s=args.step_duration,
        warmup_s=args.warmup,
        start_users=args.start_users,
        max_users=args.max_users,
        max_steps=args.max_steps,
        resolution=args.resolution,
        server_pid=server_pid,
        env=env,
    )
    print(
        f"find-max over {mix}: steps of {cfg.warmup_s} s warm-up + {cfg.step_s} s, "
        f"users {cfg.start_users}..{cfg.max_users}, at most {cfg.max_steps} steps "
        f"(~{cfg.worst_case_s} s at worst); SLO {args.slo or DEFAULT_SLO}"
    )
    best = run_find_max(cfg)
    print(f"report: {args.report}/ (find_max.json, step*/locust_*.csv and latency.png)")
    return 0 if best is not None else 1


def main(argv: list[str]) -> int:
    p = _parser()
    args = p.parse_args(argv)
    _check_args(p, args)
    line, busy = load_average_note()
    print(line)
    if busy:
        print(
            "warning: load average above 0.5: something else is running, so the figures are "
            "lower bounds (issue 11's targets are for a quiet machine)",
            file=sys.stderr,
        )
    args.report.mkdir(parents=True, exist_ok=True)
    server = None
    host = args.host
    if host is None:
        server, host = _start_server(args.model_repository, args.server_config)
    pid = server.pid if server is not None else args.server_pid
    try:
        if args.find_max:
            return _find_max(args, host, pid)
        _, mix, env = _mix_for(args, host)
        return _plain_run(args, host, pid, mix, env)
    finally:
        if server is not None:
            _stop_server(server)
