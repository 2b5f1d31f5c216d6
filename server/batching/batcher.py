"""Deadline-aware dynamic batcher: one queue per model version, owned by one task.

Triton's semantics (max_batch_size, max_queue_delay_microseconds measured from the oldest
request's arrival, preferred_batch_size, a bounded queue) plus deadlines: a request whose
deadline has passed is answered at once and never run (checked at enqueue, at batch formation and
just before running), and the former never waits past the point where the earliest deadline in
the batch would be missed given the run time measured for that batch size. It waits at all only
when waiting has recently paid (someone joined); a closed-loop client at concurrency 1 therefore
stops paying the delay after a few requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor

from server.batching.envelope import Envelope
from server.batching.latency import LatencyModel
from server.batching.runner import BatchObserver, BatchRunner, RunFn
from server.errors import DeadlineExceeded, InferenceFailed, ModelNotReady, Overloaded

__all__ = ["BatchObserver", "BatchPolicy", "Batcher", "RunFn"]

log = logging.getLogger("shopserve.batching")

# Fraction of waits that must have gained a request for waiting to go on; and how often a
# batcher that stopped waiting tries once more (arrival patterns change).
_WAIT_PAYS = 0.25
_PROBE_EVERY = 256
# A batch is not delayed closer than this to its earliest deadline: scheduling jitter, plus half
# the expected run time. Deadlines are enforced to the millisecond (a timer answers 504), and
# on a busy 2-core machine sleeps overshoot and runs stretch: waiting to gain a few rows is not
# worth a miss.
_DEADLINE_MARGIN_NS = 5_000_000
_DEADLINE_MARGIN_SHARE = 0.5


class BatchPolicy:
    """What the batcher needs from the model config, flattened."""

    def __init__(
        self,
        *,
        max_batch_size: int,
        dynamic: bool,
        max_queue_delay_us: int = 0,
        preferred_batch_sizes: tuple[int, ...] = (),
        max_queue_size: int = 0,
        pad_values: dict[str, int | float] | None = None,
        dynamic_outputs: dict[str, tuple[int, ...]] | None = None,
        max_batch_tokens: int = 0,
    ) -> None:
        self.max_rows = max(1, max_batch_size)
        self.batching = max_batch_size > 0
        self.dynamic = dynamic and max_batch_size > 0
        self.max_queue_delay_ns = max_queue_delay_us * 1000
        self.preferred = tuple(sorted(set(preferred_batch_sizes)))
        self.max_queue_size = max_queue_size
        self.pad_values = pad_values or {}
        self.dynamic_outputs = dynamic_outputs or {}
        # padded inputs only: rows x the longest request of a batch stays within this (0: off)
        self.max_batch_tokens = max_batch_tokens if self.pad_values else 0


class Batcher:
    def __init__(
        self,
        name: str,
        policy: BatchPolicy,
        run: RunFn,
        executor: Executor,
        instances: int,
        observer: BatchObserver,
        latency: LatencyModel | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        inline_ns: int = 0,
    ) -> None:
        self.name = name
        self.policy = policy
        self.latency = latency or LatencyModel()
        self._observer = observer
        self._clock = clock
        self._runner = BatchRunner(
            name,
            run,
            executor,
            observer,
            self.latency,
            policy.pad_values,
            policy.dynamic_outputs,
            clock,
            inline_ns,
        )
        self._queue: deque[Envelope] = deque()
        self._wake = asyncio.Event()
        self._free: asyncio.Queue[int] = asyncio.Queue()
        for i in range(instances):
            self._free.put_nowait(i)
        self._running: set[asyncio.Task[None]] = set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._wait_gain = 1.0  # EWMA of "a wait gained at least one request"
        self._since_probe = 0

    # -- public -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"batcher:{self.name}"
            )

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def queued(self) -> int:
        return len(self._queue)

    def is_overloaded(self) -> bool:
        limit = self.policy.max_queue_size
        if limit <= 0 or len(self._queue) < limit:
            return False
        # answered (504 at their deadline) or abandoned requests hold no slot: purge, re-count
        self._drop_dead(self._clock())
        return len(self._queue) >= limit

    def submit(self, env: Envelope) -> None:
        """Enqueue or raise at once: closing (503), expired (504), queue full (429)."""
        if self._closing:
            raise ModelNotReady(f"model '{self.name}' is unloading")
        now = self._clock()
        if env.expired(now):
            self._observer.on_expired(env, now)
            raise DeadlineExceeded(
                f"request deadline passed before it was queued for model '{self.name}'"
            )
        if self.is_overloaded():
            self._observer.on_rejected()
            raise Overloaded(
                f"model '{self.name}' queue is full ({self.policy.max_queue_size} requests)",
                retry_after_s=1,
            )
        if env.deadline_ns:
            # answered 504 at the deadline, even while every instance is busy
            delay_s = (env.deadline_ns - now) / 1e9
            env.timer = asyncio.get_running_loop().call_later(
                delay_s, self._runner.expire, env, env.deadline_ns, "in the queue or while running"
            )
        self._queue.append(env)
        self._wake.set()

    async def close(self, timeout_s: float | None = None) -> None:
        """Stop accepting; finish everything queued and running."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                log.warning("batcher %s: drain timed out; failing what is left", self.name)
                self._task.cancel()
                for env in self._queue:
                    env.fail(ModelNotReady(f"model '{self.name}' was unloaded"))
                self._queue.clear()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    # -- the former ---------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            try:
                if not self._queue:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                instance = await self._free.get()
                try:
                    batch = await self._collect()
                except BaseException:
                    self._free.put_nowait(instance)
                    raise
                if not batch:
                    self._free.put_nowait(instance)
                    continue
                task = asyncio.get_running_loop().create_task(self._run(batch, instance))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            except asyncio.CancelledError:
                raise
            except Exception:  # the former never dies
                log.exception("batcher %s: unexpected error while forming a batch", self.name)
                await asyncio.sleep(0)

    def _drop_dead(self, now: int) -> None:
        """Answer expired requests at once and forget those whose client went away."""
        if not any(e.future.done() or e.expired(now) for e in self._queue):
            return
        keep: deque[Envelope] = deque()
        for env in self._queue:
            if env.future.done():
                continue
            if env.expired(now):
                self._runner.expire(env, now, "in the queue")
                continue
            keep.append(env)
        self._queue = keep

    def _target_rows(self, queued_rows: int) -> tuple[int, bool]:
        """(rows to take, whether the batch is complete without waiting)."""
        p = self.policy
        if queued_rows >= p.max_rows:
            return p.max_rows, True
        fitting = [s for s in p.preferred if s <= queued_rows]
        if fitting:
            return fitting[-1], True
        return p.max_rows, False

    def _should_wait(self) -> bool:
        if self._wait_gain >= _WAIT_PAYS:
            return True
        self._since_probe += 1
        if self._since_probe >= _PROBE_EVERY:
            self._since_probe = 0
            return True
        return False

    async def _collect(self) -> list[Envelope]:
        p = self.policy
        if not p.dynamic:
            now = self._clock()
            self._drop_dead(now)
            return [self._queue.popleft()] if self._queue else []
        waited = False
        count_before_wait = 0
        while True:
            now = self._clock()
            self._drop_dead(now)
            if not self._queue:
                return []
            queued_rows = sum(e.rows for e in self._queue)
            target, complete = self._target_rows(queued_rows)
            if not complete and p.max_batch_tokens:  # enough tokens queued to fill a batch
                complete = sum(e.rows * e.length for e in self._queue) >= p.max_batch_tokens
            if complete or p.max_queue_delay_ns == 0:
                break
            oldest = self._queue[0]
            wait_until = oldest.arrival_ns + p.max_queue_delay_ns
            deadlines = [e.deadline_ns for e in self._queue if e.deadline_ns]
            if deadlines:
                run_ns = self.latency.expected_ns(min(target, queued_rows + 1))
                margin = _DEADLINE_MARGIN_NS + _DEADLINE_MARGIN_SHARE * run_ns
                wait_until = min(wait_until, min(deadlines) - int(run_ns + margin))
            if wait_until <= now:
                break
            if not waited:
                if not self._should_wait():
                    break
                waited = True
                count_before_wait = len(self._queue)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), (wait_until - now) / 1e9)
        if waited:
            gained = 1.0 if len(self._queue) > count_before_wait else 0.0
            self._wait_gain += 0.2 * (gained - self._wait_gain)
        return self._take(target)

    def _take(self, target: int) -> list[Envelope]:
        """Up to `target` rows: the oldest request first, then (for padded inputs) the requests
        closest to its length among the next few, else FIFO."""
        q = self._queue
        head = q.popleft()
        batch, rows = [head], head.rows
        if not q or rows >= target:
            return batch
        if self.policy.pad_values and head.length:
            # the requests closest to the head's length first (a length bucket), within the
            # row target and the padded-token bound
            window = [q[i] for i in range(min(len(q), 4 * target))]
            window.sort(key=lambda e: abs(e.length - head.length))
            cap, longest = self.policy.max_batch_tokens, head.length
            chosen = []
            for env in window:
                fits = rows + env.rows <= target
                if fits and cap and (rows + env.rows) * max(longest, env.length) > cap:
                    fits = False
                if fits:
                    chosen.append(env)
                    rows += env.rows
                    longest = max(longest, env.length)
                if rows >= target:
                    break
            ids = {id(e) for e in chosen}
            self._queue = deque(e for e in q if id(e) not in ids)
            chosen.sort(key=lambda e: e.arrival_ns)
            return batch + chosen
        while q and rows + q[0].rows <= target:
            env = q.popleft()
            batch.append(env)
            rows += env.rows
        return batch

    # -- running --------------------------------------------------------------------------------

    async def _run(self, batch: list[Envelope], instance: int) -> None:
        try:
            now = self._clock()
            for env in batch:
                env.dequeue_ns = now
            await self._runner.run(batch, instance)
        except Exception as exc:  # never leave a request hanging
            log.exception("batcher %s: batch failed outside the model", self.name)
            for env in batch:
                env.fail(InferenceFailed(f"model '{self.name}': {exc}"))
        finally:
            self._free.put_nowait(instance)
            self._wake.set()
