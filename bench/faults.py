"""`shopserve bench faults [--json FILE]`: what the server does under faults, on real servers
over loopback, in one table: requests lost under a 10x burst, under 5 reloads and under SIGTERM
(all should be 0), how fast the 429s of the burst come back, how late the 504s come after a
30 ms deadline on a busy model, and how many batch-mates fail with a poisoned request (0: the
batch is isolated). Bounded: about a minute, a few hundred requests. See docs/reliability.md.

The scenario functions are shared with tests/e2e/test_chaos.py, which asserts on their results.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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

IR_VERSION = 10  # ONNX Runtime 1.31 reads at most IR 13; onnx 1.23 writes 14 by default
OPSET = 17
CLIENT_TIMEOUT_S = 60.0
POISON_ID = 5000  # bagofwords has 1000 ids and declares no bounds: its Gather fails on this


# -- models -----------------------------------------------------------------------------------------


def _slow_graph(matmuls: int, size: int):
    """x FP32 [1, 1] -> y FP32 [1, 1] through `matmuls` chained [size x size] MatMuls (the
    chain depends on x, so nothing is folded at load)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    a = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
    inits = [numpy_helper.from_array(a, "a"), numpy_helper.from_array(np.float32(0), "zero")]
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Mul", ["a", "s"], ["m0"]),
    ]
    for i in range(matmuls):
        nodes.append(helper.make_node("MatMul", [f"m{i}", "a"], [f"m{i + 1}"]))
    nodes += [
        helper.make_node("ReduceMean", [f"m{matmuls}"], ["r"], keepdims=0),
        helper.make_node("Mul", ["x", "zero"], ["x0"]),
        helper.make_node("Add", ["x0", "r"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def _run_ms(model) -> float:
    """Median time of one run on one intra-op thread, in ms."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = {"x": np.ones((1, 1), np.float32)}
    sess.run(None, x)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        sess.run(None, x)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def write_slow_model(folder: Path, target_ms: float, size: int = 256) -> float:
    """A model `folder.name` that takes about `target_ms` per request on this machine (one
    intra-op thread, max_batch_size 1, no dynamic batching: one request at a time). Returns the
    run time measured for the chain chosen."""
    import onnx

    from server.contract.model_config import (
        InstanceGroup,
        ModelConfig,
        ModelWarmup,
        Optimization,
        TensorConfig,
        encode_config,
    )

    per = max(_run_ms(_slow_graph(8, size)) / 8, 1e-3)
    matmuls = int(min(2000, max(1, round(target_ms / per))))
    model = _slow_graph(matmuls, size)
    measured = _run_ms(model)
    (folder / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "1" / "model.onnx"))
    config = ModelConfig(
        name=folder.name,
        max_batch_size=1,
        input=[TensorConfig(name="x", data_type="TYPE_FP32", dims=[1])],
        output=[TensorConfig(name="y", data_type="TYPE_FP32", dims=[1])],
        instance_group=[InstanceGroup(count=1, kind="KIND_CPU")],
        optimization=Optimization(graph_level="basic", intra_op_threads=1),
        model_warmup=ModelWarmup(batch_sizes=[1]),
    )
    (folder / "config.toml").write_bytes(encode_config(config))
    return measured


def build_fault_repository(out: Path, slow_ms: float | None = None) -> Path:
    """The demo repository with bagofwords batching over a 50 ms window (a poisoned request
    shares its batch with the good ones) and, given `slow_ms`, a model `slow`."""
    import msgspec

    from export.demo import build_demo_repository, demo_configs
    from server.contract.model_config import DynamicBatching, encode_config

    build_demo_repository(out)
    cfg = demo_configs()["bagofwords"]
    windowed = msgspec.structs.replace(
        cfg, dynamic_batching=DynamicBatching(max_queue_delay_microseconds=50_000)
    )
    (out / "bagofwords" / "config.toml").write_bytes(encode_config(windowed))
    if slow_ms is not None:
        write_slow_model(out / "slow", slow_ms)
    return out


# -- the client -------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None  # None: no answer (connection refused, reset, timed out): lost
    elapsed_s: float
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""


def connect(base: str) -> http.client.HTTPConnection:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=CLIENT_TIMEOUT_S)


def request(
    base: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> Answer:
    """One request on its own connection (given, maybe connected already), with a client
    timeout; the time is from sending the request to the end of the answer."""
    conn = conn or connect(base)
    t0 = time.perf_counter()
    try:
        hdrs = {"Connection": "close", **(headers or {})}
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Answer(
            r.status, time.perf_counter() - t0, {k.lower(): v for k, v in r.getheaders()}, data
        )
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def infer_body(name: str, shape: list[int], datatype: str, data: list) -> bytes:
    return json.dumps(
        {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}
    ).encode()


SLOW_BODY = infer_body("x", [1, 1], "FP32", [1.0])
MLP_BODY = infer_body("features", [1, 64], "FP32", [0.5] * 64)


def metric_sum(base: str, name: str) -> float:
    """The sum of a metric's samples (all labels) at /metrics."""
    text = request(base, "GET", "/metrics").body.decode()
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def _all_at_once(
    n: int, fn: Callable[[int, http.client.HTTPConnection | None], Answer], base: str = ""
) -> list[Answer]:
    """`fn(i, conn)` for i < n from n threads released together; given `base`, each thread
    connects before the release (so the answer times leave out connection set-up)."""
    gate = threading.Barrier(n)

    def one(i: int) -> Answer:
        conn = None
        if base:
            conn = connect(base)
            with contextlib.suppress(OSError):  # counted as lost when the request fails
                conn.connect()
        gate.wait()
        return fn(i, conn)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# -- scenarios --------------------------------------------------------------------------------------


def burst(base: str, n: int, model: str = "slow", body: bytes = SLOW_BODY) -> dict:
    """`n` requests at once: every one answered 200 or 429 (with Retry-After), none lost."""
    path = f"/v2/models/{model}/infer"
    answers = _all_at_once(n, lambda i, conn: request(base, "POST", path, body, conn=conn), base)
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
            _all_at_once, n, lambda i, conn: request(base, "POST", path, SLOW_BODY, conn=conn), base
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

        answers = _all_at_once(good + 1, one, base)
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
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
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
            f"{dq['answered_504']} answered 504: expired requests keep their queue slots "
            "until the next batch forms (docs/reliability.md)",
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
