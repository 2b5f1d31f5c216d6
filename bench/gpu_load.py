"""A closed-loop HTTP load generator in Python, for machines without `wrk` (the GPU box has
aiohttp but no package registry): `processes` processes, each an event loop holding its share of
`concurrency` keep-alive connections, each connection POSTing the next request when the last
answer arrived. Latency per request from write to whole answer, as wrk measures it."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time

import numpy as np

from bench.server_wrk import WrkResult

__all__ = ["run_aiohttp"]


async def _connection(session, url: str, body: bytes, t_end: float, lat: list, errors: list):
    headers = {"content-type": "application/json"}
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                ok = r.status == 200
        except Exception:
            ok = False
        lat.append(time.perf_counter() - t0)
        if not ok:
            errors.append(1)


async def _process(url: str, body: bytes, connections: int, duration_s: float) -> tuple:
    import aiohttp

    lat: list[float] = []
    errors: list[int] = []
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t_end = time.perf_counter() + duration_s
        await asyncio.gather(
            *(_connection(session, url, body, t_end, lat, errors) for _ in range(connections))
        )
    return lat, len(errors)


def _child(args: tuple) -> tuple:
    url, body, connections, duration_s = args
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    lat, errors = asyncio.run(_process(url, body, connections, duration_s))
    return lat, errors, time.perf_counter() - t0, time.process_time() - cpu0


def run_aiohttp(
    url: str, body: bytes, *, concurrency: int, duration_s: float, processes: int = 0
) -> WrkResult:
    """One closed-loop run; `processes` 0: a quarter of the cores, at most `concurrency`."""
    procs = processes or max(1, min(concurrency, (os.cpu_count() or 4) // 4))
    shares = [concurrency // procs + (i < concurrency % procs) for i in range(procs)]
    jobs = [(url, body, n, duration_s) for n in shares if n > 0]
    with mp.get_context("spawn").Pool(len(jobs)) as pool:
        parts = pool.map(_child, jobs)
    lat = np.concatenate([np.asarray(p[0]) for p in parts]) if parts else np.zeros(0)
    errors = sum(p[1] for p in parts)
    duration = max(p[2] for p in parts)
    p50, p99 = (np.percentile(lat, [50, 99]) * 1e3) if len(lat) else (0.0, 0.0)
    return WrkResult(
        requests=len(lat),
        duration_s=duration,
        p50_ms=float(p50),
        p99_ms=float(p99),
        errors=errors,
        cpu_s=sum(p[3] for p in parts),
    )
