"""The pipelines of a repository: every folder with a `pipeline.toml`, built at start-up and on
every (re)load, and rebuilt when a model it uses changes. A pipeline whose spec or artifacts are
broken is reported here (state, reason, log) at load time, never inside a request."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from server.contract.layout import pipeline_folders, relative_to_repository, version_folders
from server.contract.pipelines import (
    PIPELINE_FILE,
    AnswerSpec,
    ClassifySpec,
    ForecastSpec,
    OrderScoreSpec,
    PipelineSpec,
    RecommendSpec,
    ScoreSpec,
    SearchSpec,
    load_pipeline_spec,
)
from server.errors import ModelLoadError, ModelNotFound, ModelNotReady, ShopserveError
from server.pipelines.answer import AnswerPipeline
from server.pipelines.base import ModelSource, Pipeline
from server.pipelines.classify import ClassifyPipeline
from server.pipelines.forecast import ForecastPipeline
from server.pipelines.order_score import OrderScorePipeline
from server.pipelines.recommend import RecommendPipeline
from server.pipelines.score import ScorePipeline
from server.pipelines.search import SearchPipeline

__all__ = ["PipelineEntry", "PipelineRegistry"]

log = logging.getLogger("shopserve.pipelines")

KINDS: dict[type, Any] = {
    SearchSpec: SearchPipeline,
    RecommendSpec: RecommendPipeline,
    ClassifySpec: ClassifyPipeline,
    ScoreSpec: ScorePipeline,
    OrderScoreSpec: OrderScorePipeline,
    AnswerSpec: AnswerPipeline,
    ForecastSpec: ForecastPipeline,
}


@dataclass
class PipelineEntry:
    name: str
    state: str = "UNAVAILABLE"  # READY | UNAVAILABLE | LOADING
    reason: str = ""
    version: int | None = None
    spec: PipelineSpec | None = None
    pipeline: Pipeline | None = None
    models: list[str] = field(default_factory=list)  # what the spec names, loaded or not

    @property
    def kind(self) -> str:
        return KINDS[type(self.spec)].kind if self.spec is not None else ""


class PipelineRegistry:
    def __init__(self, root: Path, models: ModelSource) -> None:
        self.root = Path(root)
        self.models = models
        self.entries: dict[str, PipelineEntry] = {}
        self._lock = asyncio.Lock()
        self._kernels_warm = False

    def scan(self) -> list[str]:
        return pipeline_folders(self.root)

    async def load_all(self) -> None:
        for name in self.scan():
            await self.load(name)

    async def load(self, name: str) -> PipelineEntry:
        """(Re)build one pipeline; the old one keeps answering until the new one is ready."""
        async with self._lock:
            old = self.entries.get(name)
            new = PipelineEntry(name, models=old.models if old else [])
            try:
                await asyncio.to_thread(self._build, name, new)
            except (ShopserveError, ValueError, OSError, msgspec.MsgspecError) as exc:
                new.state = "UNAVAILABLE"
                reason = exc.message if isinstance(exc, ShopserveError) else str(exc)
                new.reason = relative_to_repository(self.root, reason)
                log.error("pipeline %s not ready: %s", name, new.reason)
            except Exception as exc:  # an unexpected failure is reported the same way
                reason = f"{type(exc).__name__}: {exc}"
                new.state, new.reason = "UNAVAILABLE", relative_to_repository(self.root, reason)
                log.exception("pipeline %s failed to build", name)
            else:
                new.state = "READY"
                log.info("pipeline %s ready over %s", name, new.pipeline.versions())  # type: ignore[union-attr]
            self.entries[name] = new
            return new

    async def model_changed(self, model: str) -> None:
        """The engine's listener: rebuild every pipeline that names `model`."""
        for name in [n for n, e in self.entries.items() if model in e.models]:
            await self.load(name)

    def _build(self, name: str, entry: PipelineEntry) -> None:
        path = self.root / name / PIPELINE_FILE
        try:
            spec_name, spec = load_pipeline_spec(path)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ModelLoadError(f"{name}/{PIPELINE_FILE}: {exc}") from None
        if spec_name != name:
            raise ModelLoadError(
                f"{name}/{PIPELINE_FILE}: field `name` is '{spec_name}' but the folder is '{name}'"
            )
        entry.spec, entry.models = spec, list(spec.models)
        versions = version_folders(self.root / name)
        if not versions:
            raise ModelLoadError(f"{name}/: no numeric version folder")
        entry.version = versions[-1]
        self._warm_kernels()
        entry.pipeline = KINDS[type(spec)].load(
            spec, self.root / name / str(versions[-1]), self.models
        )

    def _warm_kernels(self) -> None:
        if not self._kernels_warm:
            import kernels

            log.info("kernels ready in %.2f s", kernels.warmup())
            self._kernels_warm = True

    def get(self, name: str, kind: str) -> Pipeline:
        """The ready pipeline `name` of `kind`: 404 when there is none, 503 when not ready."""
        entry = self.entries.get(name)
        if entry is None:
            raise ModelNotFound(f"no pipeline '{name}' is served")
        if entry.state != "READY" or entry.pipeline is None:
            raise ModelNotReady(f"pipeline '{name}' is not ready: {entry.reason or entry.state}")
        if entry.kind != kind:
            raise ModelNotReady(f"pipeline '{name}' is a {entry.kind} pipeline, not {kind}")
        return entry.pipeline

    def overloaded(self, name: str) -> bool:
        """A model the pipeline calls has a full queue: its requests are refused (429) before
        their body is read."""
        entry = self.entries.get(name)
        if entry is None or entry.pipeline is None:
            return False  # answered 404/503 after decoding
        for model in entry.models:
            try:
                if self.models.get_model(model).is_overloaded():
                    return True
            except ShopserveError:
                continue
        return False

    def warnings_for(self, used: dict[str, str]) -> list[str]:
        """What an answer that used these models must tell its client: a model published with
        a failed gate, or a preview model (its card's gate)."""
        out: list[str] = []
        for name in used:
            try:
                gate = getattr(self.models.get_model(name), "gate", None)
            except ShopserveError:
                continue  # the pipeline's own name, or a model gone since
            if gate is not None:
                out.extend(f"{name}: {w}" for w in gate.warnings)
        return out

    def ready(self) -> list[PipelineEntry]:
        return [e for e in self.entries.values() if e.state == "READY"]
