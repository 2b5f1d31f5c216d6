"""Writing one folder of the repository: a model (`config.toml`, `1/model.onnx`, its artifacts,
the card) or a pipeline (`pipeline.toml`, `1/` with its artifacts).

A model is built in `DIR/.staging/<name>/` and moved into `DIR/<name>/` only when its gates pass
(or `--allow-regression`), so a server watching `DIR` never sees a half-written or regressed
model, and an interrupted `export all` resumes from the models already in place.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.contract.model_config import CONFIG_FILE, ModelConfig, decode_config, encode_config
from server.contract.pipelines import PIPELINE_FILE, PipelineSpec, encode_pipeline_spec

__all__ = ["ModelFolder", "is_done", "staging_dir"]

STAGING = ".staging"
CACHE = ".export-cache"


def staging_dir(out: Path, name: str) -> Path:
    d = out / STAGING / name
    if d.exists():
        shutil.rmtree(d)
    (d / "1").mkdir(parents=True)
    return d


def is_done(out: Path, names: list[str]) -> bool:
    """Every named folder published: a model with its config and card, or a pipeline."""
    return all(
        ((out / n / CONFIG_FILE).exists() and (out / n / "card.json").exists())
        or (out / n / PIPELINE_FILE).exists()
        for n in names
    )


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
        final = self.out / self.name
        if final.exists():
            shutil.rmtree(final)
        shutil.move(str(self.dir), str(final))
        return final
