"""Writing one model folder of the repository: `config.toml`, `1/model.onnx`, artifacts, cards.

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

from server.repository.config import decode_config

__all__ = ["Tensor", "ModelFolder", "config_toml", "is_done", "staging_dir"]

STAGING = ".staging"
CACHE = ".export-cache"


@dataclass(frozen=True)
class Tensor:
    name: str
    data_type: str
    dims: list[int]
    pad_value: int | float | None = None


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string of printable text is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def config_toml(
    name: str,
    inputs: list[Tensor],
    outputs: list[Tensor],
    max_batch_size: int,
    preferred_batch_size: list[int] | None = None,
    max_queue_delay_us: int = 500,
    default_timeout_us: int = 100_000,
    platform: str = "onnxruntime_onnx",
    parameters: dict[str, Any] | None = None,
    warmup_dynamic_dim: int | None = None,
) -> str:
    """The config.toml text; decoded with the server's own schema before it is returned."""
    out = [
        f"name = {_value(name)}",
        f"platform = {_value(platform)}",
        f"max_batch_size = {max_batch_size}",
        "",
    ]
    for kind, tensors in (("input", inputs), ("output", outputs)):
        for t in tensors:
            out += [
                f"[[{kind}]]",
                f"name = {_value(t.name)}",
                f"data_type = {_value(t.data_type)}",
                f"dims = {_value(t.dims)}",
            ]
            if t.pad_value is not None:
                out.append(f"pad_value = {_value(t.pad_value)}")
            out.append("")
    if max_batch_size > 0 and platform == "onnxruntime_onnx":
        preferred = [p for p in (preferred_batch_size or []) if p <= max_batch_size]
        out += [
            "[dynamic_batching]",
            f"max_queue_delay_microseconds = {max_queue_delay_us}",
            f"preferred_batch_size = {_value(preferred)}",
            "",
            "[dynamic_batching.default_queue_policy]",
            "max_queue_size = 4096",
            f"default_timeout_microseconds = {default_timeout_us}",
            "allow_timeout_override = true",
            "",
        ]
    if platform == "onnxruntime_onnx":
        out += [
            "[[instance_group]]",
            "count = 1",
            'kind = "KIND_AUTO"',
            "",
            "[optimization]",
            'graph_level = "all"',
            "intra_op_threads = 1",
            "",
        ]
        if warmup_dynamic_dim is not None:
            out += ["[model_warmup]", f"dynamic_dim = {warmup_dynamic_dim}", ""]
    out += ["[version_policy]", "latest = { num_versions = 1 }", ""]
    if parameters:
        out.append("[parameters]")
        out += [f"{k} = {_value(v)}" for k, v in parameters.items()]
        out.append("")
    text = "\n".join(out)
    decode_config(text)  # the server's contract: fail here, not at load time
    return text


def staging_dir(out: Path, name: str) -> Path:
    d = out / STAGING / name
    if d.exists():
        shutil.rmtree(d)
    (d / "1").mkdir(parents=True)
    return d


def is_done(out: Path, names: list[str]) -> bool:
    return all(
        (out / n / "config.toml").exists() and (out / n / "card.json").exists() for n in names
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

    def write_config(self, text: str) -> None:
        (self.dir / "config.toml").write_text(text)

    def write_json(self, rel: str, obj: Any) -> None:
        (self.dir / rel).write_text(json.dumps(obj, indent=2) + "\n")

    def publish(self) -> Path:
        final = self.out / self.name
        if final.exists():
            shutil.rmtree(final)
        shutil.move(str(self.dir), str(final))
        return final
