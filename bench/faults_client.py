"""The plain HTTP client of `shopserve bench faults`: one request, answers with their times,
requests sent all at once, percentiles, metrics read back."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from bench.faults_models import CLIENT_TIMEOUT_S

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


def all_at_once(
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
