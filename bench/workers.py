"""`shopserve bench workers [--quick] [--json FILE]`: issue 12's worker benchmark.

`shopserve serve --workers N` for N = 1, 2 and `auto` (one per core), side by side in one run:
for the MLP over V2 (`/v2/models/mlp/infer`, the bench MLP of bench/server_models.py) and for
`/v1/score` (the risk model and score pipeline of `shopserve export risk --quick`, or of
`--score-repository`), requests/s, p50 and p99 from wrk (closed loop, `--concurrency`
connections, one thread), and requests per server-CPU-second: the user + system time of the
supervisor and all its workers, from /proc. Nothing is pinned (the workers are there to use every
core), so wrk shares the cores with the server: its own CPU is reported beside. All servers are
started first; then for each endpoint the worker counts run back to back, so background load
weighs on them alike. The PSS of each server (supervisor + workers, /proc/PID/smaps_rollup) is
reported too, and with `--pss-repository DIR` that of 1 and 2 workers serving DIR.
See docs/performance.md, "Worker processes".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.server_models import MODELS, build_bench_repository
from bench.server_procs import ServerProcess, free_port, load_snapshot
from bench.server_wrk import ensure_wrk, lua_script, run_wrk
from bench.workers_memory import tree_pss, wait_workers

__all__ = ["main", "parse_args"]

FULL = {"warm_s": 3, "measure_s": 10}
QUICK = {"warm_s": 1, "measure_s": 4}
SESSION = {  # a valid /v1/score session (tests/server/pipelines/shop.py has the same)
    "Administrative": 0, "Administrative_Duration": 0.0, "Informational": 0,
    "Informational_Duration": 0.0, "ProductRelated": 1, "ProductRelated_Duration": 0.0,
    "BounceRates": 0.2, "ExitRates": 0.2, "PageValues": 0.0, "SpecialDay": 0.0, "Month": "Feb",
    "OperatingSystems": 1, "Browser": 1, "Region": 1, "TrafficType": 1,
    "VisitorType": "Returning_Visitor", "Weekend": False,
}  # fmt: skip
# budgets far beyond any queue the bench builds: a 504 would be a dropped request, not a result
_SETTINGS = 'log_level = "warning"\n[budgets_ms]\nscore = 30000\n'


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="shopserve bench workers", description=__doc__.split("\n")[0])
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--quick", action="store_true", help="5 s per cell instead of 13 s")
    p.add_argument("--workers", default="1,2,auto", help="comma-separated worker counts")
    p.add_argument("--endpoints", default="mlp,score", help="comma-separated: mlp,score")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument(
        "--listen",
        default="shared",
        help="comma-separated: shared,reuseport (the `listen` setting; both: compared per cell)",
    )
    p.add_argument("--warm-s", type=int, default=None)
    p.add_argument("--measure-s", type=int, default=None)
    p.add_argument("--score-repository", type=Path, default=None,
                   help="a repository with `risk` and `score` (default: export risk --quick)")  # fmt: skip
    p.add_argument("--pss-repository", type=Path, default=None,
                   help="also report the PSS of 1 and 2 workers serving this repository")  # fmt: skip
    p.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    args = p.parse_args(argv)
    args.workers = [w for w in args.workers.split(",") if w]
    args.endpoints = [e for e in args.endpoints.split(",") if e]
    args.listen = [m for m in args.listen.split(",") if m]
    mode = QUICK if args.quick else FULL
    args.warm_s = mode["warm_s"] if args.warm_s is None else args.warm_s
    args.measure_s = mode["measure_s"] if args.measure_s is None else args.measure_s
    return args


def _count(label: str) -> int:
    """Processes of a server label `N`, `auto` or `N/<listen mode>`."""
    n = label.split("/")[0]
    return len(os.sched_getaffinity(0)) if n == "auto" else int(n)


def _score_folders(args: argparse.Namespace, workdir: Path) -> Path | None:
    """A repository holding `risk` and `score`: the given one, or a quick export of the risk
    family (a minute of training, niced); None when neither can be had."""
    if args.score_repository is not None:
        return args.score_repository
    out = workdir / "risk-export"
    cmd = ["nice", "-n", "10", sys.executable, "-m", "server", "export", "risk", "--quick",
           "--allow-regression", "--out", str(out)]  # fmt: skip
    print("bench workers: exporting the risk family (--quick) for /v1/score", file=sys.stderr)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        print(f"bench workers: no /v1/score rows: export failed: {done.stderr[-800:]}",
              file=sys.stderr)  # fmt: skip
        return None
    return out


def _repository(args: argparse.Namespace, workdir: Path) -> Path:
    repo = build_bench_repository(workdir / "repository", ["mlp"])
    if "score" in args.endpoints:
        source = _score_folders(args, workdir)
        if source is None or not (source / "score").is_dir() or not (source / "risk").is_dir():
            args.endpoints = [e for e in args.endpoints if e != "score"]
        else:
            for name in ("risk", "score"):
                shutil.copytree(source / name, repo / name)
            config = repo / "risk" / "config.toml"  # as the bench MLP's: see _SETTINGS
            config.write_text(
                re.sub(
                    r"default_timeout_microseconds = \d+",
                    "default_timeout_microseconds = 30000000",
                    config.read_text(),
                )
            )
    return repo


def _bodies(workdir: Path) -> dict[str, tuple[str, Path]]:
    """endpoint -> (path, wrk script)."""
    m = MODELS["mlp"]
    x = m.example_row()
    v2 = {"inputs": [{"name": m.input_name, "shape": list(x.shape), "datatype": m.v2_datatype,
                      "data": x.ravel().tolist()}]}  # fmt: skip
    out = {}
    for endpoint, path, body in (
        ("mlp", "/v2/models/mlp/infer", v2),
        ("score", "/v1/score", {"session": SESSION}),
    ):
        (workdir / f"{endpoint}.json").write_text(json.dumps(body))
        script = workdir / f"{endpoint}.lua"
        script.write_text(lua_script(workdir / f"{endpoint}.json"))
        out[endpoint] = (path, script)
    return out


def _start(repo: Path, label: str, workdir: Path, stack: ExitStack) -> tuple[ServerProcess, str]:
    """The server of `label` (`N`, `auto`, or either with `/shared` or `/reuseport`)."""
    workers, _, listen = label.partition("/")
    port, tmp = free_port(), workdir / f"tmp-{label.replace('/', '-')}"
    tmp.mkdir()
    (tmp / "settings.toml").write_text(_SETTINGS)
    cmd = [sys.executable, "-m", "server", "serve", "--model-repository", str(repo),
           "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "0",
           "--workers", workers, "--config", str(tmp / "settings.toml")]  # fmt: skip
    env = {"SHOPSERVE_DEVICE": "cpu", "TMPDIR": str(tmp)}
    if listen:
        env["SHOPSERVE_LISTEN"] = listen
    srv = stack.enter_context(ServerProcess(cmd, cpu=None, env=env, log_path=tmp / "server.log"))
    base = f"http://127.0.0.1:{port}"
    srv.wait_ready(base + "/v2/health/ready", timeout_s=300)
    wait_workers(tmp, _count(label))
    return srv, base


def _cell(args, wrk: str, srv: ServerProcess, base: str, label: str, endpoint: str,
          bodies: dict[str, tuple[str, Path]]) -> dict:  # fmt: skip
    path, script = bodies[endpoint]
    kw = {"concurrency": args.concurrency, "cpu": None}
    if args.warm_s > 0:
        run_wrk(wrk, base + path, script, duration_s=args.warm_s, **kw)
    cpu0, load0 = srv.cpu_s(), os.getloadavg()[0]
    res = run_wrk(wrk, base + path, script, duration_s=args.measure_s, **kw)
    cpu = srv.cpu_s() - cpu0
    row = {
        "endpoint": endpoint,
        "workers": label,
        "processes": _count(label),
        "concurrency": args.concurrency,
        "rps": round(res.rps, 1),
        "p50_ms": round(res.p50_ms, 3),
        "p99_ms": round(res.p99_ms, 3),
        "errors": res.errors,
        "server_cpu_pct": round(100 * cpu / res.duration_s, 1),
        "req_per_server_cpu_s": round(res.rps * res.duration_s / cpu, 1) if cpu > 0 else None,
        "wrk_cpu_pct": round(100 * res.cpu_s / res.duration_s, 1),
        "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    print(f"  {endpoint:<6} workers={label:<4} rps={row['rps']:9.1f} p99={row['p99_ms']:8.2f} ms "
          f"req/CPU-s={row['req_per_server_cpu_s']} wrk CPU {row['wrk_cpu_pct']}% "
          f"errors={res.errors}", file=sys.stderr, flush=True)  # fmt: skip
    return row


def format_table(rows: list[dict]) -> str:
    head = ("| endpoint | workers | req/s | p50 ms | p99 ms | server CPU % | req per server "
            "CPU-s | wrk CPU % | errors | x 1 worker (req/s, req/CPU-s) |")  # fmt: skip
    lines = [head, "|" + "---|" * 10]
    ones = {r["endpoint"]: r for r in rows if r["workers"].split("/")[0] == "1"}
    for r in rows:
        one = ones.get(r["endpoint"])
        ratio = "-"
        if one and one["rps"] and one["req_per_server_cpu_s"] and r["req_per_server_cpu_s"]:
            ratio = (f"{r['rps'] / one['rps']:.2f}x, "
                     f"{r['req_per_server_cpu_s'] / one['req_per_server_cpu_s']:.2f}x")  # fmt: skip
        auto = r["workers"].startswith("auto")
        label = r["workers"] + (f" ({r['processes']})" if auto else "")
        lines.append(
            f"| {r['endpoint']} | {label} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['server_cpu_pct']:.0f} | {r['req_per_server_cpu_s']} | "
            f"{r['wrk_cpu_pct']:.0f} | {r['errors']} | {ratio} |"
        )
    return "\n".join(lines)


def _pss_of(repo: Path, labels: list[str], workdir: Path) -> dict[str, dict]:
    """PSS of servers over `repo`, one at a time (none shares the others' pages), once every
    worker is ready (models loaded and warmed up)."""
    out = {}
    for label in labels:
        sub = workdir / f"pss-{label}"  # short: the workers' Unix socket paths live under it
        sub.mkdir()
        with ExitStack() as stack:
            srv, _ = _start(repo, label, sub, stack)
            time.sleep(1.0)
            out[label] = tree_pss(srv.pid)
        print(f"  PSS {repo} workers={label}: {out[label]}", file=sys.stderr, flush=True)
    return out


def _run(args: argparse.Namespace, wrk: str, workdir: Path) -> tuple[list[dict], dict]:
    repo = _repository(args, workdir)
    bodies = _bodies(workdir)
    rows: list[dict] = []
    pss: dict[str, dict] = {}
    with ExitStack() as stack:
        labels = [
            w if len(args.listen) == 1 else f"{w}/{m}" for w in args.workers for m in args.listen
        ]
        if len(args.listen) == 1:
            os.environ["SHOPSERVE_LISTEN"] = args.listen[0]
        servers = {label: _start(repo, label, workdir, stack) for label in labels}
        time.sleep(1.0)  # start-up work settles
        for label, (srv, _) in servers.items():
            pss[f"bench repository, workers={label}"] = tree_pss(srv.pid)
        for endpoint in args.endpoints:
            for label, (srv, base) in servers.items():
                rows.append(_cell(args, wrk, srv, base, label, endpoint, bodies))
    if args.pss_repository is not None:
        for label, v in _pss_of(args.pss_repository, ["1", "2"], workdir).items():
            pss[f"{args.pss_repository}, workers={label}"] = v
    return rows, pss


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    wrk = ensure_wrk(install=not args.no_install)
    if wrk is None:
        print("bench workers: wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    before = load_snapshot(os.getpid())
    print(f"load before: {before}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sbw-") as tmp:
        rows, pss = _run(args, wrk, Path(tmp))
    after = load_snapshot(os.getpid())
    print(format_table(rows))
    print("\nPSS (MiB; supervisor + workers; each process's Pss):")
    for name, v in pss.items():
        print(f"  {name}: {v['total_mib']['Pss']} (anon {v['total_mib']['Pss_Anon']}, file "
              f"{v['total_mib']['Pss_File']}); each {v['each_mib']}")  # fmt: skip
    print(
        f"\nload before: {before}\nload after:  {after}\n({time.monotonic() - t0:.0f} s; warm "
        f"{args.warm_s} s + measure {args.measure_s} s per cell; c={args.concurrency}; "
        f"{len(os.sched_getaffinity(0))} cores, wrk and the server share them: nothing pinned)"
    )
    if args.json:
        doc = {"rows": rows, "pss": pss, "load": {"before": before, "after": after},
               "settings": {"warm_s": args.warm_s, "measure_s": args.measure_s,
                            "concurrency": args.concurrency, "argv": sys.argv,
                            "cores": len(os.sched_getaffinity(0))}}  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1))
    return 0
