"""Writing one folder of the repository: a model (`config.toml`, `1/model.onnx`, its artifacts,
the card) or a pipeline (`pipeline.toml`, `1/` with its artifacts).

A model is built in `DIR/.staging/<name>/` and moved into `DIR/<name>/` only when its gates pass
(or `--allow-regression`), so a server watching `DIR` never sees a half-written or regressed
model, and an interrupted `export all` resumes from the models already in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.contract.layout import PUBLISHING
from server.contract.model_config import CONFIG_FILE, ModelConfig, decode_config, encode_config
from server.contract.pipelines import PIPELINE_FILE, PipelineSpec, encode_pipeline_spec

__all__ = ["PUBLISHING", "ModelFolder", "is_done", "publish_batch", "staging_dir"]

STAGING = ".staging"
CACHE = ".export-cache"

_batch: ContextVar[list[ModelFolder] | None] = ContextVar("publish_batch", default=None)
TIERS = ("preview", "full")


def staging_dir(out: Path, name: str) -> Path:
    d = out / STAGING / name
    if d.exists():
        shutil.rmtree(d)
    (d / "1").mkdir(parents=True)
    return d


def _tier(folder: Path) -> str:
    try:
        return json.loads((folder / "card.json").read_text())["gate"].get("tier", "full")
    except (OSError, ValueError, KeyError):
        return "missing"


def is_done(out: Path, names: list[str], tier: str = "full") -> bool:
    """Every named folder published: each model with its config and a card of `tier` or better
    (a preview does not count for a full build), and each pipeline."""
    want = TIERS.index(tier)
    for n in names:
        if (out / n / PIPELINE_FILE).exists():
            continue
        if not (out / n / CONFIG_FILE).exists():
            return False
        got = _tier(out / n)
        if got not in TIERS or TIERS.index(got) < want:
            return False
    return True


@contextlib.contextmanager
def publish_batch(out: Path) -> Iterator[None]:
    """Folders published inside this block are moved in together when it ends (also when a gate
    failed for some of them: those never reached publish), under `out/.publishing`."""
    pending: list[ModelFolder] = []
    token = _batch.set(pending)
    try:
        yield
    finally:
        _batch.reset(token)
        if pending:
            marker = out / PUBLISHING
            marker.write_text(str(os.getpid()))
            try:
                for folder in pending:
                    folder.move_in()
            finally:
                marker.unlink(missing_ok=True)


@dataclass
class ModelFolder:
    """A model being written in staging; `publish()` moves it into the repository."""

    out: Path
    name: str
    dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.dir = staging_dir(self.out, self.name)

    @property
    def version(self) -> Path:
        return self.dir / "1"

    def write_config(self, config: ModelConfig) -> None:
        """`config.toml`, checked by decoding it with the server's own schema."""
        text = encode_config(config)
        decode_config(text)
        (self.dir / CONFIG_FILE).write_bytes(text)

    def write_pipeline(self, spec: PipelineSpec) -> None:
        """`pipeline.toml`: this folder is a shop pipeline, not a model."""
        (self.dir / PIPELINE_FILE).write_bytes(encode_pipeline_spec(self.name, spec))

    def write_json(self, rel: str, obj: Any) -> None:
        (self.dir / rel).write_text(json.dumps(obj, indent=2) + "\n")

    def publish(self) -> Path:
        """Move the folder into the repository now, or at the end of the `publish_batch`."""
        pending = _batch.get()
        if pending is not None:
            pending.append(self)
            return self.out / self.name
        return self.move_in()

    def move_in(self) -> Path:
        final = self.out / self.name
        old = self.out / STAGING / f"{self.name}.old"
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            final.rename(old)  # two renames: the folder is missing for microseconds, never partial
        self.dir.rename(final)
        if old.exists():
            shutil.rmtree(old)
        return final
