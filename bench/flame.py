"""`shopserve bench flame --model-repository DIR --out docs/flame/LABEL`: where a request's server
CPU goes, as py-spy flame graphs (issue 11 item 1).

One server (one worker, `shopserve serve`) over DIR; for each path (`--paths`), wrk drives it
closed-loop at `--concurrency` for `--seconds` while `py-spy record` samples the server (every
thread, idle frames left out) into `OUT/<path>.svg`, and the run's requests/s and wrk's p50/p99
go to `OUT/summary.md` beside the server's CPU seconds per request over the window. Paths:
`v2-mlp` (`/v2/models/mlp/infer`, the demo MLP), `score`, `classify` (4 reviews; the sentiment
head, or the first head the repository serves), `search`, `recommend`. Each path must answer one
request with 200 before it is profiled: a profile of error answers is not the path's (the
command stops, naming the path and the server's answer). Needs `py-spy` (the `bench` extra) and
wrk.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.server_procs import ServerProcess, free_port
from bench.server_wrk import ensure_wrk, lua_script, run_wrk
from bench.workers import SESSION
from loadtests.mix import pipeline_rows, served_classify_tasks

__all__ = ["PATHS", "main"]

REVIEW = (
    "I ordered this top in my usual size and it fits well through the shoulders, but the fabric "
    "is thinner than the photos suggest and it wrinkled after one wash. The colour is lovely."
)
PATHS = {
    "v2-mlp": (
        "/v2/models/mlp/infer",
        {
            "inputs": [
                {"name": "features", "datatype": "FP32", "shape": [1, 64], "data": [0.5] * 64}
            ]
        },
    ),
    "score": ("/v1/score", {"session": SESSION}),
    # 4 reviews, a budget of 2 s: the profile is of the work, not of 504s
    # (`_classify_task` replaces the task when the repository serves no sentiment head)
    "classify": ("/v1/classify", {"texts": [REVIEW] * 4, "task": "sentiment", "budget_ms": 2000}),
    "search": ("/v1/search", {"query": "red heart candle holder", "k": 10}),
    "recommend": ("/v1/recommend", {"history": ["85123A", "71053", "84406B"], "k": 10}),
}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, clock ticks


def _post(port: int, path: str, body: dict) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _classify_task(port: int) -> str | None:
    """The head `classify` profiles: sentiment when served, else the first served head."""
    try:
        heads = served_classify_tasks(pipeline_rows(f"http://127.0.0.1:{port}"))
    except OSError:
        return None
    return "sentiment" if "sentiment" in heads else (heads[0] if heads else None)


def _body(port: int, name: str) -> tuple[str, dict]:
    path, body = PATHS[name]
    if name == "classify":
        body = {**body, "task": _classify_task(port) or body["task"]}
    status, raw = _post(port, path, body)
    if status != 200:
        raise SystemExit(
            f"bench flame: {name} ({path}) answered {status}, not 200, so it is not profiled: "
            f"{raw[:300].decode(errors='replace')}"
        )
    return path, body


def _profile(
    wrk: str, port: int, pid: int, name: str, out: Path, args: argparse.Namespace, tmp: Path
) -> str:
    path, body = _body(port, name)
    (tmp / f"{name}.json").write_text(json.dumps(body))
    script = tmp / f"{name}.lua"
    script.write_text(lua_script(tmp / f"{name}.json"))
    url = f"http://127.0.0.1:{port}{path}"
    run_wrk(wrk, url, script, concurrency=args.concurrency, duration_s=2, cpu=None)  # warm
    spy = subprocess.Popen(
        [args.py_spy, "record", "--pid", str(pid), "--rate", str(args.rate), "--duration",
         str(args.seconds), "--format", "flamegraph", "--output", str(out / f"{name}.svg"),
         "--nonblocking", "--threads"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(0.5)
    cpu0 = _cpu_s(pid)
    res = run_wrk(
        wrk, url, script, concurrency=args.concurrency, duration_s=args.seconds - 1, cpu=None
    )
    cpu = _cpu_s(pid) - cpu0
    spy.wait(timeout=args.seconds + 60)
    ok = max(res.requests - res.errors, 1)
    return (
        f"| {name} | `{path}`{_note(name, body)} | {res.rps:.0f} | {res.p50_ms:.2f} | {res.p99_ms:.2f} | "
        f"{res.errors} | {cpu / ok * 1e6:.0f} | `{name}.svg` |"
    )


def _note(name: str, body: dict) -> str:
    return f" ({len(body['texts'])} reviews, {body['task']})" if name == "classify" else ""


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="shopserve bench flame", description=__doc__.split("\n")[0])
    p.add_argument("--model-repository", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--paths", default=",".join(PATHS))
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--py-spy", default=str(Path(sys.executable).with_name("py-spy")))
    p.add_argument("--config", type=Path, help="a settings TOML for the server")
    args = p.parse_args(argv)
    wrk = ensure_wrk()
    if wrk is None:
        print("wrk is needed (apt-get install wrk)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("shopserve")), "serve", "--model-repository",
           str(args.model_repository), "--port", str(port), "--grpc-port", "0"]  # fmt: skip
    if args.config:
        cmd += ["--config", str(args.config)]
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="sbf-") as t,
        ServerProcess(
            cmd, cpu=None, env={"SHOPSERVE_DEVICE": "cpu"}, log_path=Path(t) / "server.log"
        ) as srv,
    ):
        srv.wait_ready(f"http://127.0.0.1:{port}/v2/health/ready")
        for name in args.paths.split(","):
            rows.append(_profile(wrk, port, srv.pid, name, args.out, args, Path(t)))
            print(rows[-1], flush=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    head = (
        f"`shopserve bench flame --model-repository {args.model_repository} --out {args.out}` "
        f"(wrk c={args.concurrency}, {args.seconds} s per path, py-spy {args.rate} Hz, "
        f"load average after: {' '.join(load)})\n\n"
        "| path | route | req/s | p50 ms | p99 ms | errors | server CPU µs per request | "
        "flame graph |\n|---|---|---|---|---|---|---|---|\n"
    )
    (args.out / "summary.md").write_text(head + "\n".join(rows) + "\n")
    print(head + "\n".join(rows))
    return 0
