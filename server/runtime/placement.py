"""How one worker's ONNX Runtime sessions share the machine with the other workers: intra-op
threads so that workers x threads <= cores unless a model's config says otherwise, and where
CPU models with memory-mapped weights live when there are several workers.

A worker's share of the cores keeps one core for its event loop (HTTP, decoding, the pipelines'
tokenization and kernels) when it has more than one: ONNX Runtime's intra-op threads spin on
every core they are given, and on 2 cores a text model's batch on both of them set the tail of
every other endpoint (docs/performance.md, "Where pipeline CPU work runs": with the classify
models on one thread, recommend, search and score met their p99 in the storefront mix)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Placement"]

log = logging.getLogger("shopserve.runtime")


@dataclass(frozen=True)
class Placement:
    workers: int = 1
    cores: int = 0  # 0: os.cpu_count()
    # several workers: CPU models are loaded with their weights in a file under here, mapped by
    # every worker (server/runtime/weights.py); None: each process parses its own copy
    weights_dir: Path | None = None

    def intra_op_threads(self, configured: int | None, model: str) -> int:
        """ONNX Runtime's intra_op_num_threads for `model`: the config's when it sets one."""
        cores = self.cores or os.cpu_count() or 1
        if configured is None:
            return self.default_threads()
        per_worker = configured or cores  # 0: ONNX Runtime's default, one per core
        if per_worker * self.workers > cores:
            log.warning(
                "model %s: intra_op_threads = %d in its config, with %d worker(s) on %d core(s): "
                "%d threads may run at once on %d cores (remove the setting to get %d)",
                model,
                configured,
                self.workers,
                cores,
                per_worker * self.workers,
                cores,
                self.default_threads(),
            )
        return configured

    def default_threads(self) -> int:
        """A worker's share of the cores, less the one its event loop keeps (at least 1)."""
        share = max(1, (self.cores or os.cpu_count() or 1) // self.workers)
        return max(1, share - 1)
