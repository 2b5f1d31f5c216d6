"""A request on its way through a model queue."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BatchResult", "Envelope"]


@dataclass(slots=True)
class BatchResult:
    outputs: dict[str, np.ndarray]
    queue_ns: int
    compute_ns: int
    batch_size: int


@dataclass(slots=True, eq=False)
class Envelope:
    """Inputs shaped [rows, *dims]; `deadline_ns` is absolute on the batcher's clock (0: none).

    The future is cancelled when the client goes away (the awaiting task is cancelled); the
    batcher then drops the envelope before it runs. `timer` answers it 504 at its deadline,
    whatever the instances are doing.
    """

    inputs: dict[str, np.ndarray]
    rows: int
    arrival_ns: int
    deadline_ns: int
    future: asyncio.Future[BatchResult]
    request_id: str = ""
    length: int = 0  # longest dynamic non-batch dim, for grouping similar lengths
    dequeue_ns: int = field(default=0)
    timer: asyncio.TimerHandle | None = None

    def expired(self, now_ns: int) -> bool:
        return self.deadline_ns != 0 and now_ns >= self.deadline_ns

    def finish(self, result: BatchResult) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.future.done():
            self.future.set_result(result)

    def fail(self, exc: BaseException) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.future.done():
            self.future.set_exception(exc)
