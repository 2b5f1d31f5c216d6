"""The `pipeline` platform: a repository folder whose config names the models it calls and the
artifacts in its version folder. Loaded (artifacts read, kernels compiled) at model load time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from server.contract.model_config import ModelConfig
from server.runtime.session import ModelLoadError

__all__ = ["PipelineLoader"]


class PipelineLoader:
    """Called by the repository for `platform = "pipeline"` folders; compiles the kernels on the
    first pipeline it loads (Numba caches them on disk, so later processes start in seconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warm = False

    def _warm_kernels(self) -> None:
        with self._lock:
            if not self._warm:
                import kernels

                kernels.warmup()
                self._warm = True

    def __call__(self, config: ModelConfig, version: int, folder: Path, repository: Any) -> Any:
        from server.pipelines.recommend import RecommendPipeline
        from server.pipelines.search import SearchPipeline

        kinds = {"search": SearchPipeline, "recommend": RecommendPipeline}
        kind = str(config.parameters.get("kind", config.name))
        cls = kinds.get(kind)
        if cls is None:
            raise ModelLoadError(
                f"{folder}: no pipeline kind '{kind}' (parameters.kind or the name): {sorted(kinds)}"
            )
        self._warm_kernels()
        return cls(config, version, folder, repository)
