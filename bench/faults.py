"""`shopserve bench faults [--json FILE]`: what the server does under faults, on real servers
over loopback, in one table: requests lost under a 10x burst, under 5 reloads and under SIGTERM
(all should be 0), how fast the 429s of the burst come back, how late the 504s come after a
30 ms deadline on a busy model, and how many batch-mates fail with a poisoned request (0: the
batch is isolated). Bounded: about a minute, a few hundred requests. See docs/reliability.md.

The scenario functions are shared with tests/e2e/test_chaos.py, which asserts on their results.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.faults_client import (
    MLP_BODY,
    SLOW_BODY,
    Answer,
    all_at_once,
    infer_body,
    metric_sum,
    pct,
    request,
)
from bench.faults_models import (
    CLIENT_TIMEOUT_S,
    POISON_ID,
    build_fault_repository,
    write_slow_model,
)

__all__ = [
    "Answer",
    "build_fault_repository",
    "burst",
    "deadline_lateness",
    "main",
    "metric_sum",
    "poisoned_batches",
    "reload_under_load",
    "sigterm_under_load",
    "write_slow_model",
]


# -- scenarios --------------------------------------------------------------------------------------


def burst(base: str, n: int, model: str = "slow", body: bytes = SLOW_BODY) -> dict:
    """`n` requests at once: every one answered 200 or 429 (with Retry-After), none lost."""
    path = f"/v2/models/{model}/infer"
    answers = all_at_once(n, lambda i, conn: request(base, "POST", path, body, conn=conn), base)
    ok = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status == 429]
    return {
        "sent": n,
        "ok": len(ok),
        "refused": len(refused),
        "refused_without_retry_after": sum("retry-after" not in a.headers for a in refused),
        "other": sorted(a.status for a in answers if a.status not in (200, 429, None)),
        "lost": sum(a.status is None for a in answers),
        "errors": [a.error for a in answers if a.status is None][:3],
        "refused_ms_p50": pct([a.elapsed_s * 1e3 for a in refused], 50),
        "refused_ms_p99": pct([a.elapsed_s * 1e3 for a in refused], 99),
    }


def _hammer(base: str, path: str, body: bytes, stop: threading.Event) -> list[Answer]:
    out = []
    while not stop.is_set():
        out.append(request(base, "POST", path, body))
    return out


def reload_under_load(
    base: str, reloads: int = 5, clients: int = 4, token: str = "t", model: str = "mlp"
) -> dict:
    """`clients` threads hammer the model while another reloads it `reloads` times."""
    stop = threading.Event()
    auth = {"Authorization": f"Bearer {token}"}
    with ThreadPoolExecutor(clients) as pool:
        futures = [
            pool.submit(_hammer, base, f"/v2/models/{model}/infer", MLP_BODY, stop)
            for _ in range(clients)
        ]
        time.sleep(0.3)
        loads = []
        for _ in range(reloads):
            loads.append(request(base, "POST", f"/v2/repository/models/{model}/load", b"", auth))
            time.sleep(0.2)
        stop.set()
        answers = [a for f in futures for a in f.result()]
    return {
        "sent": len(answers),
        "ok": sum(a.status == 200 for a in answers),
        "non_200": sorted({a.status for a in answers if a.status not in (200, None)}),
        "lost": sum(a.status is None for a in answers),
        "reloads_ok": sum(a.status == 200 for a in loads),
        "reloads": reloads,
    }


def sigterm_under_load(
    base: str,
    terminate: Callable[[], None],
    wait_exit: Callable[[float], int | None],
    n: int = 8,
    model: str = "slow",
) -> dict:
    """`n` requests in flight (admitted: counted by `shopserve_inflight_requests`), then
    SIGTERM: every one answered 200, the process exits 0."""
    path = f"/v2/models/{model}/infer"
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(
            all_at_once, n, lambda i, conn: request(base, "POST", path, SLOW_BODY, conn=conn), base
        )
        deadline = time.monotonic() + 30
        inflight = 0.0
        while time.monotonic() < deadline and not sent.done():
            inflight = metric_sum(base, "shopserve_inflight_requests")
            if inflight >= n:
                break
            time.sleep(0.01)
        terminate()
        answers = sent.result()
    code = wait_exit(60)
    return {
        "sent": n,
        "admitted_before_sigterm": int(inflight),
        "ok": sum(a.status == 200 for a in answers),
        "other": sorted(a.status for a in answers if a.status not in (200, None)),
        "lost": sum(a.status is None for a in answers),
        "exit_code": code,
    }


def deadline_lateness(
    base: str, probes: int = 60, timeout_ms: int = 30, clients: int = 4, model: str = "slow"
) -> dict:
    """Requests with `X-Request-Timeout-Ms: timeout_ms` to a model kept busy (a background
    client without a deadline): each is answered 504 at its deadline; lateness = answer time
    minus the deadline, measured by the client (so it includes loopback HTTP)."""
    stop = threading.Event()
    busy = threading.Thread(
        target=_hammer, args=(base, f"/v2/models/{model}/infer", SLOW_BODY, stop), daemon=True
    )
    busy.start()
    time.sleep(0.2)
    headers = {"X-Request-Timeout-Ms": str(timeout_ms)}

    def probe(_: int) -> Answer:
        return request(base, "POST", f"/v2/models/{model}/infer", SLOW_BODY, headers)

    try:
        with ThreadPoolExecutor(clients) as pool:
            answers = list(pool.map(probe, range(probes)))
    finally:
        stop.set()
        busy.join(CLIENT_TIMEOUT_S)
    late = [a.elapsed_s * 1e3 - timeout_ms for a in answers if a.status == 504]
    return {
        "sent": probes,
        "answered_504": len(late),
        "other": sorted(a.status for a in answers if a.status not in (504, None)),
        "lost": sum(a.status is None for a in answers),
        "late_ms_p50": pct(late, 50),
        "late_ms_p99": pct(late, 99),
        "early": sum(x < 0 for x in late),
    }


def poisoned_batches(base: str, rounds: int = 5, good: int = 15) -> dict:
    """Each round: `good` requests and one with an out-of-vocabulary id at once, to bagofwords
    (no value bounds; 50 ms batching window): the good ones all 200, the poisoned one 500
    `inference_failed`, and `shopserve_batch_isolations_total` grows."""
    before = metric_sum(base, "shopserve_batch_isolations_total")
    mates_failed = poisoned_500 = 0
    codes: list[str] = []
    for _ in range(rounds):

        def one(i: int, conn: http.client.HTTPConnection | None) -> Answer:
            ids = [1, 2, POISON_ID] if i == good else [1 + i, 2 + i, 3]
            body = infer_body("input_ids", [1, 3], "INT64", ids)
            return request(base, "POST", "/v2/models/bagofwords/infer", body, conn=conn)

        answers = all_at_once(good + 1, one, base)
        mates_failed += sum(a.status != 200 for a in answers[:good])
        poison = answers[good]
        if poison.status == 500:
            poisoned_500 += 1
            codes.append(json.loads(poison.body).get("code", ""))
    return {
        "rounds": rounds,
        "good_per_round": good,
        "batch_mates_failed": mates_failed,
        "poisoned_500": poisoned_500,
        "poisoned_codes": sorted(set(codes)),
        "isolations": metric_sum(base, "shopserve_batch_isolations_total") - before,
    }


# -- the command ------------------------------------------------------------------------------------


def _server(repo: Path, env: dict[str, str], log: Path):
    from bench.server_procs import ServerProcess, free_port

    port = free_port()
    cmd = [sys.executable, "-m", "server", "serve", "--model-repository", str(repo)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--grpc-port", "0"]
    full = {"SHOPSERVE_DEVICE": "cpu", "SHOPSERVE_LOG_LEVEL": "warning", **env}
    proc = ServerProcess(cmd, cpu=None, env=full, log_path=log)
    base = f"http://127.0.0.1:{port}"
    proc.wait_ready(base + "/v2/health/ready", timeout_s=120)
    return proc, base


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.1f}"


def run(args: argparse.Namespace, work: Path) -> dict:
    t0 = time.monotonic()
    repo = build_fault_repository(work / "repo", slow_ms=args.slow_ms)
    res: dict = {"loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    qsize = args.queue
    env = {"SHOPSERVE_DEFAULT_MAX_QUEUE_SIZE": str(qsize)}
    proc, base = _server(repo, env, work / "slow.log")
    try:
        res["burst"] = burst(base, 10 * qsize)
        # the same probes on the small queue: expired requests hold their slots (see the doc)
        res["deadline_small_queue"] = deadline_lateness(base, probes=args.probes)
    finally:
        proc.stop()
    admin = {
        "SHOPSERVE_MODEL_CONTROL_MODE": "explicit",
        "SHOPSERVE_LOAD_MODELS": "*",
        "SHOPSERVE_ADMIN_TOKEN": "t",
    }
    proc, base = _server(repo, admin, work / "admin.log")
    try:
        res["reload"] = reload_under_load(base)
        res["poison"] = poisoned_batches(base, rounds=args.rounds)
    finally:
        proc.stop()
    proc, base = _server(repo, {}, work / "sigterm.log")
    try:
        res["deadline"] = deadline_lateness(base, probes=args.probes)

        def terminate() -> None:
            proc.proc.send_signal(signal.SIGTERM)

        def wait_exit(timeout: float) -> int | None:
            try:
                return proc.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None

        res["sigterm"] = sigterm_under_load(base, terminate, wait_exit)
    finally:
        proc.stop()
    res["slow_model_ms"] = args.slow_ms
    res["queue"] = qsize
    res["elapsed_s"] = round(time.monotonic() - t0, 1)
    res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return res


def format_table(res: dict) -> str:
    b, d, r, s, p = (res[k] for k in ("burst", "deadline", "reload", "sigterm", "poison"))
    dq = res["deadline_small_queue"]
    rows = [
        (
            f"requests lost, burst of {b['sent']} (10x the queue bound)",
            f"{b['lost']}",
            f"{b['ok']} x 200, {b['refused']} x 429"
            + (f", other {b['other']}" if b["other"] else "")
            + (
                f", {b['refused_without_retry_after']} 429 without Retry-After"
                if b["refused_without_retry_after"]
                else ""
            ),
        ),
        (
            f"requests lost, {r['reloads']} reloads of mlp under load",
            f"{r['lost']}",
            f"{r['sent']} sent, {r['ok']} x 200, non-200 {r['non_200'] or 'none'}, "
            f"{r['reloads_ok']}/{r['reloads']} reloads answered 200",
        ),
        (
            "requests lost, SIGTERM under load",
            f"{s['lost']}",
            f"{s['admitted_before_sigterm']} admitted before SIGTERM, {s['ok']} x 200, "
            f"exit code {s['exit_code']}",
        ),
        (
            "429 answer time during the burst, p50 / p99 (ms)",
            f"{_fmt(b['refused_ms_p50'])} / {_fmt(b['refused_ms_p99'])}",
            "refused before the body is read",
        ),
        (
            "504 lateness after a 30 ms deadline, p50 / p99 (ms)",
            f"{_fmt(d['late_ms_p50'])} / {_fmt(d['late_ms_p99'])}",
            f"{d['answered_504']}/{d['sent']} answered 504 while the model is busy "
            f"(~{res['slow_model_ms']:g} ms per request)",
        ),
        (
            f"30 ms-deadline probes answered 429, queue bound {res['queue']}",
            f"{dq['other'].count(429)}/{dq['sent']}",
            f"{dq['answered_504']} answered 504: a full queue first purges requests already "
            "answered, so expired ones hold no slot",
        ),
        (
            "batch-mates failed per poisoned request",
            f"{p['batch_mates_failed'] / max(p['rounds'], 1):g}",
            f"{p['rounds']} rounds of {p['good_per_round']} good + 1 poisoned, "
            f"{p['poisoned_500']} poisoned answered 500 {p['poisoned_codes']}, "
            f"{p['isolations']:g} isolations",
        ),
    ]
    w0 = max(len(x[0]) for x in rows)
    w1 = max(len(x[1]) for x in rows)
    lines = [
        f"| {'measure':<{w0}} | {'value':>{w1}} | notes |",
        f"|{'-' * (w0 + 2)}|{'-' * (w1 + 1)}:|---|",
    ]
    lines += [f"| {a:<{w0}} | {v:>{w1}} | {n} |" for a, v, n in rows]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="shopserve bench faults", description=__doc__.split("\n")[0])
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--queue", type=int, default=8, help="the servers' default max queue size")
    p.add_argument("--slow-ms", type=float, default=300.0, help="the slow model's run time")
    p.add_argument("--probes", type=int, default=60, help="requests with a 30 ms deadline")
    p.add_argument("--rounds", type=int, default=5, help="poisoned batches")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="shopserve-faults-"))
    try:
        res = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"shopserve bench faults: {os.cpu_count()} CPUs, load average before "
        f"{res['loadavg_before']}, after {res['loadavg_after']}, {res['elapsed_s']} s"
    )
    print(format_table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    lost = res["burst"]["lost"] + res["reload"]["lost"] + res["sigterm"]["lost"]
    bad = lost or res["reload"]["non_200"] or res["poison"]["batch_mates_failed"]
    return 1 if bad or res["sigterm"]["exit_code"] != 0 else 0
