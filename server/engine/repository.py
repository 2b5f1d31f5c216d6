"""The repository of ONNX models: scan `<root>/<name>/config.toml` + numeric version folders,
load and unload models, report broken ones (file, field, reason) without stopping the others.
Folders holding a `pipeline.toml` are the pipelines' (server/pipelines), not models.

State lives on the instance (one per app); loads run ONNX Runtime and warm-up in a thread so the
event loop keeps answering. A reload swaps the new versions in, tells the listeners (the pipeline
registry rebuilds what uses the model), then drains the old versions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from server.contract.card import GateSummary, read_gate
from server.contract.layout import model_folders, relative_to_repository, version_folders
from server.contract.model_config import CONFIG_FILE, ModelConfig, load_config
from server.contract.pipelines import artifact_path
from server.engine.model import LoadedModel
from server.errors import BadRequest, ModelLoadError, ModelNotFound, ModelNotReady
from server.metrics import Metrics
from server.runtime.placement import Placement
from server.runtime.session import OrtModel

__all__ = ["ModelEntry", "ModelRepository"]

log = logging.getLogger("shopserve.repository")

ChangeListener = Callable[[str], Awaitable[None]]
"""Called with a model's name after its served versions changed (load, reload, unload)."""


@dataclass
class ModelEntry:
    name: str
    state: str = "UNAVAILABLE"  # READY | UNAVAILABLE | LOADING | UNLOADING
    reason: str = ""
    config: ModelConfig | None = None
    versions: dict[int, LoadedModel] = field(default_factory=dict)
    version_errors: dict[int, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.state == "READY" and bool(self.versions)


def _describe_config_error(path: Path, exc: Exception) -> str:
    if isinstance(exc, msgspec.ValidationError):
        return f"{path}: invalid field: {exc}"
    if isinstance(exc, msgspec.DecodeError):
        return f"{path}: not valid TOML: {exc}"
    return f"{path}: {exc}"


class ModelRepository:
    def __init__(
        self,
        root: Path,
        *,
        metrics: Metrics | None = None,
        device_setting: str = "auto",
        graceful_timeout_s: float = 30.0,
        max_dynamic_dim: int = 8192,
        default_max_queue_size: int = 1024,
        placement: Placement | None = None,
        inline_cpu_us: float = 0.0,
    ) -> None:
        self.placement = placement or Placement()
        self.inline_cpu_us = inline_cpu_us
        self.max_dynamic_dim = max_dynamic_dim
        self.default_max_queue_size = default_max_queue_size
        self.root = Path(root)
        self.metrics = metrics
        self.device_setting = device_setting
        self.graceful_timeout_s = graceful_timeout_s
        self.entries: dict[str, ModelEntry] = {}
        self.listeners: list[ChangeListener] = []
        self._locks: dict[str, asyncio.Lock] = {}

    # -- discovery -------------------------------------------------------------------------------

    def scan(self) -> list[str]:
        """Model folder names under the root: every folder but hidden ones and pipelines."""
        return model_folders(self.root)

    def index(self) -> list[dict[str, str]]:
        """Triton's repository index: every model folder and every loaded/failed version."""
        out: list[dict[str, str]] = []
        for name in sorted(set(self.scan()) | set(self.entries)):
            entry = self.entries.get(name)
            if entry is None:
                out.append(
                    {"name": name, "version": "", "state": "UNAVAILABLE", "reason": "not loaded"}
                )
                continue
            if not entry.versions and not entry.version_errors:
                out.append(
                    {"name": name, "version": "", "state": entry.state, "reason": entry.reason}
                )
            for v in sorted(entry.versions):
                out.append({"name": name, "version": str(v), "state": entry.state, "reason": ""})
            for v, why in sorted(entry.version_errors.items()):
                out.append({"name": name, "version": str(v), "state": "UNAVAILABLE", "reason": why})
        return out

    # -- lookups ---------------------------------------------------------------------------------

    def entry(self, name: str) -> ModelEntry:
        entry = self.entries.get(name)
        if entry is None:
            if name in self.scan():
                raise ModelNotReady(f"model '{name}' is not loaded")
            raise ModelNotFound(f"unknown model '{name}'")
        return entry

    def get(self, name: str, version: str | int | None = None) -> LoadedModel:
        """The served version (highest when not given); 404 unknown, 503 not ready."""
        entry = self.entry(name)
        if version in (None, ""):
            if not entry.ready:
                raise ModelNotReady(f"model '{name}' is not ready: {entry.reason or entry.state}")
            return entry.versions[max(entry.versions)]
        try:
            v = int(version)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise BadRequest(f"model_version: '{version}' is not a version number") from None
        if v in entry.versions and entry.state == "READY":
            return entry.versions[v]
        if v in entry.version_errors:
            raise ModelNotReady(
                f"model '{name}' version {v} is not ready: {entry.version_errors[v]}"
            )
        if entry.state != "READY" and v in entry.versions:
            raise ModelNotReady(f"model '{name}' is {entry.state.lower()}")
        raise ModelNotFound(f"unknown version {v} of model '{name}'")

    def get_model(self, name: str) -> LoadedModel:
        """The served version of `name` (the pipelines' `ModelSource`)."""
        return self.get(name)

    def ready_models(self) -> list[LoadedModel]:
        return [m for e in self.entries.values() if e.ready for m in e.versions.values()]

    # -- load / unload -----------------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        if name not in self._locks:
            self._locks[name] = asyncio.Lock()
        return self._locks[name]

    async def load_all(self, names: list[str] | None = None) -> None:
        for name in names if names is not None else self.scan():
            await self.load(name, raise_on_error=False)

    async def load(self, name: str, *, raise_on_error: bool = True) -> ModelEntry:
        """Load (or reload) a model. A broken model is recorded with its reason; with
        `raise_on_error` the caller gets a 400 naming the file and field."""
        if name not in self.scan():
            raise ModelNotFound(f"no model folder '{name}' in the model repository")
        async with self._lock(name):
            old = self.entries.get(name)
            new = ModelEntry(name=name, state="LOADING")
            if old is None:
                self.entries[name] = new
            try:
                built = await asyncio.to_thread(self._build, name, new)
            except Exception as exc:  # broken config or file: report, keep serving the rest
                reason = (
                    exc.message
                    if isinstance(exc, ModelLoadError)
                    else str(exc)
                    if isinstance(exc, ValueError)
                    else f"{type(exc).__name__}: {exc}"
                )
                reason = relative_to_repository(self.root, reason)
                log.error("model %s failed to load: %s", name, reason)
                new.state, new.reason = "UNAVAILABLE", reason
                if old is None or not old.ready:
                    self.entries[name] = new
                if raise_on_error:
                    raise BadRequest(f"failed to load model '{name}': {reason}") from None
                return new
            for m in built.values():
                m.start()
            new.versions = built
            new.state = "READY"
            self.entries[name] = new
            await self._changed(name)
            if old is not None and old is not new:
                for v, m in old.versions.items():  # requests that reach a closing version
                    m.successor = built.get(v) or built[max(built)]
                await self._close_versions(old)
            log.info("model %s ready: versions %s", name, sorted(built))
            return new

    async def _changed(self, name: str) -> None:
        for listener in self.listeners:
            try:
                await listener(name)
            except Exception:  # a listener's failure is its own (it reports it); serving goes on
                log.exception("listener for model %s failed", name)

    def _build(self, name: str, entry: ModelEntry) -> dict[int, LoadedModel]:
        folder = self.root / name
        cfg_path = folder / CONFIG_FILE
        if not cfg_path.is_file():
            raise ModelLoadError(f"{cfg_path}: missing config.toml")
        try:
            config = load_config(cfg_path)
        except (msgspec.ValidationError, msgspec.DecodeError, OSError) as exc:
            raise ModelLoadError(_describe_config_error(cfg_path, exc)) from None
        if config.name != name:
            raise ModelLoadError(
                f"{cfg_path}: field `name` is '{config.name}' but the folder is '{name}'"
            )
        entry.config = config
        available = version_folders(folder)
        versions = config.version_policy.select(available)
        if not versions:
            raise ModelLoadError(
                f"{folder}: no version folder matches version_policy (found {available or 'none'})"
            )
        gate = self._gate(folder)
        built: dict[int, LoadedModel] = {}
        for v in versions:
            try:
                built[v] = self._build_version(config, v, folder / str(v), gate)
            except ModelLoadError as exc:
                entry.version_errors[v] = relative_to_repository(self.root, str(exc))
                log.error("model %s version %d failed: %s", name, v, exc)
        if not built:
            raise ModelLoadError("; ".join(entry.version_errors.values()))
        return built

    @staticmethod
    def _gate(folder: Path) -> GateSummary | None:
        try:
            gate = read_gate(folder)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ModelLoadError(f"{folder / 'card.json'}: invalid gate: {exc}") from None
        if gate is not None and not gate.passed:
            log.warning(
                "model %s was published with a failed quality gate (--allow-regression): %s; "
                "every /v1 answer that uses it says so under `warnings`",
                folder.name,
                gate.failed,
            )
        elif gate is not None and gate.tier == "preview":
            log.warning(
                "model %s is a preview model: served until its full tier lands", folder.name
            )
        return gate

    def _build_version(
        self, config: ModelConfig, version: int, folder: Path, gate: GateSummary | None
    ) -> LoadedModel:
        try:
            path = artifact_path(folder, config.default_model_filename)
        except ValueError as exc:
            raise ModelLoadError(f"{folder}: default_model_filename: {exc}") from None
        if not path.is_file():
            raise ModelLoadError(f"{path}: model file missing")
        runner = OrtModel(path, config, self.device_setting, self.placement)
        model = LoadedModel(
            config,
            version,
            runner,
            self.metrics,
            folder,
            gate,
            self.max_dynamic_dim,
            self.default_max_queue_size,
            self.inline_cpu_us,
        )
        try:
            model.warmup()
        except Exception as exc:
            raise ModelLoadError(f"{path}: warm-up failed: {type(exc).__name__}: {exc}") from exc
        return model

    async def unload(self, name: str) -> None:
        self.entry(name)  # 404 / 503 before waiting
        async with self._lock(name):  # serialized with loads: the entry is read inside the lock
            entry = self.entry(name)
            entry.state = "UNLOADING"
            await self._close_versions(entry)
            entry.versions = {}
            entry.state, entry.reason = "UNAVAILABLE", "unloaded"
            await self._changed(name)

    async def _close_versions(self, entry: ModelEntry) -> None:
        for m in list(entry.versions.values()):
            await m.close(self.graceful_timeout_s)

    async def close(self) -> None:
        """Drain every model: queued and running requests finish."""
        for entry in list(self.entries.values()):
            if entry.versions:
                entry.state = "UNLOADING"
                await self._close_versions(entry)
