"""Model control: what is loaded at start-up, the repository poller of `model_control_mode =
"poll"`, and readiness. One swap mechanism serves all: a (re)load goes through
`ModelRepository.load` (which tells the pipeline registry), whoever asks for it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from server.contract.layout import PUBLISHING, model_folders, pipeline_folders
from server.engine.repository import ModelRepository
from server.pipelines.registry import PipelineRegistry
from server.settings import Settings

__all__ = ["RepositoryPoller", "expected_models", "is_ready"]

log = logging.getLogger("shopserve.control")


def expected_models(settings: Settings, root: Path) -> list[str]:
    """The models that should be served: `load_models` in explicit mode (`*`: all), else all."""
    found = model_folders(root)
    if settings.model_control_mode != "explicit" or "*" in settings.load_models:
        return found
    return list(settings.load_models)


def is_ready(settings: Settings, repository: ModelRepository, pipelines: PipelineRegistry) -> bool:
    """Strict: every expected model and every pipeline READY; else at least one of them."""
    models = expected_models(settings, repository.root)
    ready_models = [m for m in models if (e := repository.entries.get(m)) is not None and e.ready]
    ready_pipes = [e.name for e in pipelines.ready()]
    if settings.strict_readiness:
        return len(ready_models) == len(models) and len(ready_pipes) == len(pipelines.entries)
    return bool(ready_models or ready_pipes)


def _signature(folder: Path) -> tuple:
    """What changes when a model or pipeline folder is re-published: names, sizes, mtimes."""
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out.append((str(p.relative_to(folder)), st.st_size, st.st_mtime_ns))
    return tuple(out)


STALE_PUBLISHING_S = 600.0  # a marker older than this was left by a killed export: ignore it


def _publishing(root: Path) -> bool:
    try:
        age = time.time() - (root / PUBLISHING).stat().st_mtime
    except OSError:
        return False
    return age < STALE_PUBLISHING_S


class RepositoryPoller:
    """Every `repository_poll_secs`: load new or changed models and pipelines, unload removed ones
    (a folder must be missing on two scans in a row: publishing replaces a folder by a rename)."""

    def __init__(self, repository: ModelRepository, pipelines: PipelineRegistry) -> None:
        self.repository = repository
        self.pipelines = pipelines
        self.root = repository.root
        self._seen: dict[str, tuple] = {}
        self._missing: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def remember(self) -> None:
        """Take the repository as loaded at start-up as the baseline."""
        for name in [*model_folders(self.root), *pipeline_folders(self.root)]:
            self._seen[name] = _signature(self.root / name)

    def start(self, interval_s: float) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(interval_s), name="poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.poll()
            except Exception:  # the poller never dies
                log.exception("repository poll failed")

    async def poll(self) -> None:
        if _publishing(self.root):
            log.info("repository poll: a publish is under way (%s); next scan", PUBLISHING)
            return
        models, pipes = model_folders(self.root), pipeline_folders(self.root)
        current = {n: await asyncio.to_thread(_signature, self.root / n) for n in [*models, *pipes]}
        for name, sig in current.items():
            self._missing.discard(name)
            if self._seen.get(name) != sig:
                self._seen[name] = sig
                log.info("repository poll: %s is new or changed; loading", name)
                if name in pipes:
                    await self.pipelines.load(name)
                else:
                    await self.repository.load(name, raise_on_error=False)
        for name in [n for n in self._seen if n not in current]:
            if name not in self._missing:
                self._missing.add(name)  # gone once: maybe mid-publish; look again next time
                continue
            self._missing.discard(name)
            del self._seen[name]
            log.info("repository poll: %s was removed; unloading", name)
            if name in self.repository.entries:
                await self.repository.unload(name)
            self.pipelines.entries.pop(name, None)
