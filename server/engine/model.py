"""One served model version: its config, ONNX Runtime instances, batcher and statistics.
`infer(inputs, deadline_ns=, request_id=)` is what routes and pipelines call; neither touches a
session or the batcher."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from server.batching.batcher import Batcher, BatchPolicy
from server.batching.envelope import BatchResult, Envelope
from server.batching.latency import LatencyModel
from server.contract.card import GateSummary
from server.contract.model_config import ModelConfig
from server.engine.stats import ModelStats
from server.engine.validation import check_inputs
from server.metrics import Metrics
from server.runtime.session import OrtModel

__all__ = ["LoadedModel", "deadline_for"]


def deadline_for(config: ModelConfig, arrival_ns: int, requested_us: int | None) -> int:
    """Absolute deadline (ns, 0 = none): the config default, shortened (never lengthened) by the
    request when the config allows it."""
    policy = config.effective_queue_policy
    budget_us = policy.default_timeout_microseconds or None
    if requested_us is not None and policy.allow_timeout_override:
        budget_us = requested_us if budget_us is None else min(budget_us, requested_us)
    if budget_us is None:
        return 0
    return arrival_ns + max(0, budget_us) * 1000


class LoadedModel:
    def __init__(
        self,
        config: ModelConfig,
        version: int,
        runner: OrtModel,
        metrics: Metrics | None,
        folder: Path | None = None,
        gate: GateSummary | None = None,
        max_dynamic_dim: int = 8192,
        default_max_queue_size: int = 1024,
        inline_cpu_us: float = 0.0,
    ) -> None:
        self.max_dynamic_dim = max_dynamic_dim
        # set by the repository when a reload replaces this version: requests that reach a
        # closing version are handed to it instead of failing
        self.successor: LoadedModel | None = None
        self.config = config
        self.folder = folder if folder is not None else runner.path.parent  # the version folder
        self.gate = gate  # the card's verdict, None for a model without a card
        self.name = config.name
        self.version = version
        self.runner = runner
        # what a V2 request may ask for: the config's outputs, else the graph's (read per request)
        self.output_names = [t.name for t in config.output] or list(runner.output_names)
        self.stats = ModelStats(config.name, version, metrics, runner.choice.parameters())
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
            max_queue_size=config.effective_queue_policy.max_queue_size or default_max_queue_size,
            pad_values={t.name: t.pad_value for t in config.input if t.dynamic_axes},
            dynamic_outputs={t.name: t.dynamic_axes for t in config.output if t.dynamic_axes},
            max_batch_tokens=db.max_batch_tokens if db else 0,
        )
        self.batcher = Batcher(
            f"{config.name}:{version}",
            self.policy,
            runner.run,
            self._executor,
            runner.instances,
            self.stats,
            self.latency,
            inline_ns=self._inline_ns(runner, inline_cpu_us),
        )

    @staticmethod
    def _inline_ns(runner: OrtModel, inline_cpu_us: float) -> int:
        """Where a batch may run inline (the `inline_cpu_us` setting): CPU sessions only; a GPU
        run waits on the device, which the event loop must not do."""
        if any(kind != "KIND_CPU" for kind in runner.choice.kinds):
            return 0
        return int(inline_cpu_us * 1000)

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

    def device_parameters(self) -> dict[str, str]:
        """Where this version runs and why (`/config`, metadata, statistics)."""
        return self.runner.choice.parameters()

    def instance_groups(self) -> list[dict[str, Any]]:
        """Triton's instance groups as served: the kind each device's sessions really got (a
        model split by batch size has a CPU group and a GPU group)."""
        count = self.runner.instances
        return [
            {"name": f"{self.name}_{i}", "count": count, "kind": kind}
            | ({"gpus": [self.runner.device_id]} if kind == "KIND_GPU" else {})
            for i, kind in enumerate(self.runner.choice.kinds)
        ]

    @property
    def max_batch_size(self) -> int:
        return self.config.max_batch_size

    def expected_ns(self, rows: int) -> int:
        """Measured run time of a batch of `rows` (warm-up seeds it)."""
        return int(self.latency.expected_ns(rows))

    def deadline(self, arrival_ns: int, requested_us: int | None) -> int:
        """Absolute deadline (ns, 0 = none): the config's default, shortened (never lengthened)
        by the request's own when the config allows it."""
        return deadline_for(self.config, arrival_ns, requested_us)

    async def infer(
        self,
        inputs: dict[str, np.ndarray],
        *,
        deadline_ns: int = 0,
        request_id: str = "",
        where: str = "inputs",
    ) -> BatchResult:
        """Validate, queue and wait for the batch result. `deadline_ns` is absolute (monotonic
        clock, 0 = none); the config's default timeout applies from now when it is sooner.
        A client that goes away cancels the task awaiting here, which cancels the queued
        envelope's future: the batcher then drops it before it runs."""
        rows = check_inputs(self.config, inputs, where, self.max_dynamic_dim)
        arrival = time.monotonic_ns()
        deadline = deadline_for(self.config, arrival, None)
        if deadline_ns:
            deadline = min(deadline, deadline_ns) if deadline else deadline_ns
        length = 0
        if self.policy.pad_values:
            length = max(
                inputs[n].shape[1] if inputs[n].ndim > 1 else 0 for n in self.policy.pad_values
            )
        env = Envelope(
            inputs=dict(inputs),
            rows=rows,
            arrival_ns=arrival,
            deadline_ns=deadline,
            future=asyncio.get_running_loop().create_future(),
            request_id=request_id,
            length=length,
        )
        if self.batcher.closing and self.successor is not None:
            return await self.successor.infer(
                inputs, deadline_ns=deadline_ns, request_id=request_id, where=where
            )
        self.stats.pending(1)
        try:
            self.batcher.submit(env)
            return await env.future
        finally:
            self.stats.pending(-1)

    def is_overloaded(self) -> bool:
        """The queue is full: admission answers 429 before the body is read."""
        return self.batcher.is_overloaded()
