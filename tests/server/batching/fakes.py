"""A fake model whose run time per batch size is controlled, so batcher tests can force what a
6-microsecond model never shows (busy instances, deadlines that bite, slow big batches)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from server.batching.batcher import Batcher, BatchPolicy
from server.batching.envelope import Envelope
from server.batching.latency import LatencyModel


class FakeModel:
    """Doubles `x`; sleeps `run_ms(rows)`; raises when any row holds `poison`."""

    def __init__(
        self, run_ms: Callable[[int], float] = lambda n: 1.0, poison: float | None = None
    ) -> None:
        self.run_ms = run_ms
        self.poison = poison
        self.batches: list[list[float]] = []  # first column of every batch that ran
        self.lock = threading.Lock()
        self.threads: list[str] = []  # the thread each batch ran on

    def __call__(self, inputs: dict[str, np.ndarray], instance: int) -> dict[str, np.ndarray]:
        x = inputs["x"]
        with self.lock:
            self.batches.append([float(v) for v in x.reshape(x.shape[0], -1)[:, 0]])
            self.threads.append(threading.current_thread().name)
        time.sleep(self.run_ms(x.shape[0]) / 1000)
        if self.poison is not None and np.any(x == self.poison):
            raise RuntimeError("poisoned batch")
        return {"y": x * 2}


class Recorder:
    """A BatchObserver that counts."""

    def __init__(self) -> None:
        self.rejected = 0
        self.expired = 0
        self.ok = 0
        self.failed = 0
        self.batch_sizes: list[int] = []
        self.isolations: list[int] = []

    def on_rejected(self) -> None:
        self.rejected += 1

    def on_expired(self, env, now_ns) -> None:
        self.expired += 1

    def on_request(self, env, ok, now_ns, queue_ns, compute_ns) -> None:
        if ok:
            self.ok += 1
        else:
            self.failed += 1

    def on_answered(self, envs, now_ns, compute_ns) -> None:
        self.ok += len(envs)

    def on_batch(self, size, input_ns, infer_ns, output_ns) -> None:
        self.batch_sizes.append(size)

    def on_isolation(self, size) -> None:
        self.isolations.append(size)


def make_batcher(
    model: FakeModel,
    *,
    instances: int = 1,
    seed_latency: dict[int, float] | None = None,
    inline_us: float = 0.0,
    **policy,
) -> tuple[Batcher, Recorder]:
    policy.setdefault("max_batch_size", 8)
    policy.setdefault("dynamic", True)
    rec = Recorder()
    latency = LatencyModel()
    for rows, ms in (seed_latency or {}).items():
        latency.observe(rows, int(ms * 1e6))
    b = Batcher(
        "fake",
        BatchPolicy(**policy),
        model,
        ThreadPoolExecutor(max_workers=instances),
        instances,
        rec,
        latency,
        inline_ns=int(inline_us * 1000),
    )
    b.start()
    return b, rec


def envelope(
    value: float,
    *,
    rows: int = 1,
    width: int = 1,
    deadline_ms: float | None = None,
    now_ns: int | None = None,
) -> Envelope:
    now = time.monotonic_ns() if now_ns is None else now_ns
    x = np.full((rows, width), value, dtype=np.float32)
    return Envelope(
        inputs={"x": x},
        rows=rows,
        arrival_ns=now,
        deadline_ns=0 if deadline_ms is None else now + int(deadline_ms * 1e6),
        future=asyncio.get_running_loop().create_future(),
        length=width,
    )
