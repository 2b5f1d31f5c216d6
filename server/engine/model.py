"""One served model version: its config, ONNX Runtime instances, batcher and statistics.
`infer` is what routes and pipelines call; it never touches a session directly."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from server.batching.batcher import Batcher, BatchPolicy
from server.batching.envelope import BatchResult, Envelope
from server.batching.latency import LatencyModel
from server.metrics import Metrics
from server.contract.model_config import ModelConfig
from server.runtime.session import OrtModel
from server.engine.stats import ModelStats
from server.engine.validation import check_inputs

__all__ = ["LoadedModel", "deadline_for"]


def deadline_for(config: ModelConfig, arrival_ns: int, requested_us: int | None) -> int:
    """Absolute deadline (ns, 0 = none): the config default, shortened (never lengthened) by the
    request when the config allows it."""
    policy = config.queue_policy
    budget_us = policy.default_timeout_microseconds or None
    if requested_us is not None and policy.allow_timeout_override:
        budget_us = requested_us if budget_us is None else min(budget_us, requested_us)
    if budget_us is None:
        return 0
    return arrival_ns + max(0, budget_us) * 1000


class LoadedModel:
    def __init__(
        self, config: ModelConfig, version: int, runner: OrtModel, metrics: Metrics | None
    ) -> None:
        self.config = config
        self.name = config.name
        self.version = version
        self.runner = runner
        self.stats = ModelStats(config.name, version, metrics)
        self.latency = LatencyModel()
        self._executor = ThreadPoolExecutor(
            max_workers=runner.instances, thread_name_prefix=f"ort-{config.name}-{version}"
        )
        db = config.dynamic_batching
        self.policy = BatchPolicy(
            max_batch_size=config.max_batch_size,
            dynamic=db is not None,
            max_queue_delay_us=db.max_queue_delay_microseconds if db else 0,
            preferred_batch_sizes=tuple(db.preferred_batch_size) if db else (),
            max_queue_size=config.queue_policy.max_queue_size,
            pad_values={t.name: t.pad_value for t in config.input if t.dynamic_axes},
            dynamic_outputs={t.name: t.dynamic_axes for t in config.output if t.dynamic_axes},
        )
        self.batcher = Batcher(
            f"{config.name}:{version}",
            self.policy,
            runner.run,
            self._executor,
            runner.instances,
            self.stats,
            self.latency,
        )

    def warmup(self) -> dict[int, int]:
        """Blocking: run the warm-up batches and seed the latency model."""
        timings = self.runner.warmup()
        for rows, ns in timings.items():
            self.latency.observe(rows, ns)
        return timings

    def start(self) -> None:
        self.batcher.start()

    async def close(self, timeout_s: float | None = None) -> None:
        await self.batcher.close(timeout_s)
        self._executor.shutdown(wait=False)

    @property
    def device(self) -> str:
        return self.runner.device

    async def infer(
        self,
        inputs: dict[str, np.ndarray],
        *,
        arrival_ns: int | None = None,
        timeout_us: int | None = None,
        deadline_ns: int | None = None,
        request_id: str = "",
        future: asyncio.Future[BatchResult] | None = None,
        where: str = "inputs",
    ) -> BatchResult:
        """Validate, queue, and wait for the batch result. `deadline_ns` (absolute, monotonic)
        comes from a pipeline's budget; otherwise it is derived from config and `timeout_us`."""
        rows = check_inputs(self.config, inputs, where)
        arrival = time.monotonic_ns() if arrival_ns is None else arrival_ns
        deadline = deadline_for(self.config, arrival, timeout_us)
        if deadline_ns:
            deadline = min(deadline, deadline_ns) if deadline else deadline_ns
        length = 0
        if self.policy.pad_values:
            length = max(
                inputs[n].shape[1] if inputs[n].ndim > 1 else 0 for n in self.policy.pad_values
            )
        fut = future if future is not None else asyncio.get_running_loop().create_future()
        env = Envelope(
            inputs=dict(inputs),
            rows=rows,
            arrival_ns=arrival,
            deadline_ns=deadline,
            future=fut,
            request_id=request_id,
            length=length,
        )
        self.stats.pending(1)
        try:
            self.batcher.submit(env)
            return await fut
        finally:
            self.stats.pending(-1)
