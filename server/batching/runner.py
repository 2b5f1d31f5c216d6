"""Running one formed batch: drop what expired or was abandoned, collate, run on an instance in the
executor, split the outputs back. A failed batch is isolated, not failed whole: it is re-run in
halves (recursively, each half within its requests' deadlines) so that only the requests that fail
on their own get the error and their batch-mates are answered (Triton and LitServe fail the whole
batch)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Protocol

import numpy as np

from server.batching.collate import collate, split_outputs
from server.batching.envelope import BatchResult, Envelope
from server.batching.latency import LatencyModel
from server.errors import DeadlineExceeded, InferenceFailed

__all__ = ["BatchObserver", "BatchRunner", "RunFn"]

log = logging.getLogger("shopserve.batching")

RunFn = Callable[[dict[str, np.ndarray], int], dict[str, np.ndarray]]
"""Runs one batch on instance `i` (called in an executor thread): inputs -> outputs."""


class BatchObserver(Protocol):
    def on_rejected(self) -> None: ...
    def on_expired(self, env: Envelope, now_ns: int) -> None: ...
    def on_request(
        self, env: Envelope, ok: bool, now_ns: int, queue_ns: int, compute_ns: int
    ) -> None: ...
    def on_answered(self, envs: list[Envelope], now_ns: int, compute_ns: int) -> None: ...
    def on_batch(self, size: int, input_ns: int, infer_ns: int, output_ns: int) -> None: ...
    def on_isolation(self, size: int) -> None: ...


class BatchRunner:
    def __init__(
        self,
        name: str,
        run: RunFn,
        executor: Executor,
        observer: BatchObserver,
        latency: LatencyModel,
        pad_values: dict[str, int | float],
        dynamic_outputs: dict[str, tuple[int, ...]],
        clock: Callable[[], int] = time.monotonic_ns,
        inline_ns: int = 0,
    ) -> None:
        self.name = name
        self._run_fn = run
        # the placement rule (issue 11): a batch the latency model expects to run in under
        # `inline_ns` runs on the event loop; a hand-off to the executor thread and back costs
        # more than that (~50 us at p50, milliseconds at p99 on a busy core). 0: never inline.
        self._inline_ns = inline_ns
        self._executor = executor
        self._observer = observer
        self._latency = latency
        # the CPU time a batch's run takes on its thread (no preemption, no wait for the GIL):
        # what running it inline would block the loop for, the placement rule's input
        self._cpu = LatencyModel()
        self._pad_values = pad_values
        self._dynamic_outputs = dynamic_outputs
        self._clock = clock

    def live(self, batch: list[Envelope]) -> list[Envelope]:
        """The envelopes still worth running: answered ones (expired, abandoned) are dropped,
        expired ones answered 504 now."""
        now = self._clock()
        out = []
        for env in batch:
            if env.future.done():
                continue
            if env.expired(now):
                self.expire(env, now, "before it ran")
                continue
            out.append(env)
        return out

    def expire(self, env: Envelope, now: int, where: str) -> None:
        if env.future.done():
            return
        self._observer.on_expired(env, now)
        env.fail(DeadlineExceeded(f"deadline passed {where} (model '{self.name}')"))

    async def run(self, batch: list[Envelope], instance: int) -> None:
        """Run `batch`; on failure isolate the requests that fail on their own."""
        live = self.live(batch)
        if not live:
            return
        exc = await self._execute(live, instance)
        if exc is None:
            return
        if len(live) == 1:
            self._fail_alone(live[0], exc)
            return
        self._observer.on_isolation(len(live))
        log.warning(
            "batcher %s: batch of %d requests failed (%s: %s); re-running in halves to isolate "
            "the culprit(s); request ids %s",
            self.name,
            len(live),
            type(exc).__name__,
            exc,
            [e.request_id for e in live],
        )
        half = len(live) // 2
        await self.run(live[:half], instance)
        await self.run(live[half:], instance)

    def _fail_alone(self, env: Envelope, exc: BaseException) -> None:
        now = self._clock()
        log.error(
            "batcher %s: request %s failed on its own: %s: %s",
            self.name,
            env.request_id or "-",
            type(exc).__name__,
            exc,
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"request_id": env.request_id},
        )
        self._observer.on_request(env, False, now, env.dequeue_ns - env.arrival_ns, 0)
        env.fail(InferenceFailed(f"model '{self.name}' failed: {type(exc).__name__}: {exc}"))

    async def _execute(self, live: list[Envelope], instance: int) -> BaseException | None:
        """One run of `live`; the model's exception when it raised, else None (answered)."""
        t0 = self._clock()
        inputs_list = [e.inputs for e in live]
        rows = sum(e.rows for e in live)
        try:
            batch_inputs, padded = collate(inputs_list, self._pad_values)
            t1 = self._clock()
            if self.runs_inline(rows):
                outputs, run_ns, cpu_ns = self._timed_run(batch_inputs, instance)
            else:
                loop = asyncio.get_running_loop()
                outputs, run_ns, cpu_ns = await loop.run_in_executor(
                    self._executor, self._timed_run, batch_inputs, instance
                )
            pieces = split_outputs(outputs, inputs_list, padded, self._dynamic_outputs)
        except Exception as exc:
            return exc
        # the model's own time, measured in the worker thread: the hand-off to and from the
        # thread is scheduling noise on a busy machine, and the deadline margin covers it
        self._latency.observe(rows, run_ns)
        self._cpu.observe(rows, cpu_ns)
        t3 = self._clock()
        # compute_output includes the hand-back from the worker thread
        self._observer.on_batch(rows, t1 - t0, run_ns, t3 - t1 - run_ns)
        answered = []
        for env, piece in zip(live, pieces, strict=True):
            if env.future.done():
                continue  # answered 504 at its deadline while it ran: the result is dropped
            env.finish(BatchResult(piece, env.dequeue_ns - env.arrival_ns, t3 - t0, rows))
            answered.append(env)
        self._observer.on_answered(answered, t3, t3 - t0)  # statistics once per batch
        return None

    def runs_inline(self, rows: int) -> bool:
        """The placement rule for a batch of `rows`: inline when its run is expected under the
        threshold. Expected from the run's CPU time on its thread once this size has run (the wall
        time of a run in the executor includes preemption and the wait for the GIL, which would
        keep a 20 us model off the loop on a busy machine), else from the warm-up's best run."""
        if not self._inline_ns:
            return False
        expected = self._cpu.expected_ns(rows) or self._latency.expected_ns(rows)
        return 0 < expected < self._inline_ns

    def _timed_run(
        self, inputs: dict[str, np.ndarray], instance: int
    ) -> tuple[dict[str, np.ndarray], int, int]:
        """(outputs, wall ns, this thread's CPU ns)."""
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        out = self._run_fn(inputs, instance)
        return out, time.perf_counter_ns() - t0, time.thread_time_ns() - c0
