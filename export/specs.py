"""Each exported model's contract as data (as Optimum's `OnnxConfig`): tensor names, dtypes, dims,
dynamic axes and the numeric tolerance. One `OnnxSpec` feeds `torch.onnx.export`, the numeric
check against the source model, the served `config.toml` and the card, so a name or an axis is
written once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import server.contract.model_config as mc

__all__ = ["OnnxSpec", "TensorSpec"]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str  # Triton's name: TYPE_FP32, TYPE_INT64 ...
    dims: tuple[int, ...]  # without the batch dim; -1 for a dynamic dim
    pad_value: int | float = 0  # for a dynamic dim: what the batcher pads with
    # bounds the server checks before queueing (a bad request must not fail its batch-mates):
    min_value: int | float | None = None  # inclusive value range of integer inputs (ids)
    max_value: int | float | None = None
    max_dims: tuple[int, ...] = ()  # the largest size of each -1 dim (position table)

    def config(self) -> mc.TensorConfig:
        return mc.TensorConfig(
            name=self.name,
            data_type=self.data_type,  # type: ignore[arg-type]
            dims=list(self.dims),
            pad_value=self.pad_value,
            min_value=self.min_value,
            max_value=self.max_value,
            max_dims=list(self.max_dims),
        )


@dataclass(frozen=True)
class OnnxSpec:
    name: str  # the model's folder in the repository
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int
    preferred_batch_size: tuple[int, ...] = ()
    max_queue_delay_us: int = 500
    default_timeout_us: int = 100_000
    max_queue_size: int = 4096
    warmup_dynamic_dim: int | None = None  # a typical length for -1 dims (token ids)
    atol: float = 1e-3  # the ONNX check passes when every output is within atol ...
    min_cos: float = 0.9999  # ... or every row keeps this cosine to the source model's

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def with_tensor(self, tensor: TensorSpec) -> OnnxSpec:
        """This spec with the same-named tensor replaced (a width known only after training)."""
        if tensor.name not in (*self.input_names, *self.output_names):
            raise KeyError(f"{self.name} has no tensor `{tensor.name}`")

        def swap(ts: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
            return tuple(tensor if t.name == tensor.name else t for t in ts)

        return replace(self, inputs=swap(self.inputs), outputs=swap(self.outputs))

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """torch.onnx's dynamic axes: the batch axis (when batched) and every -1 dim."""
        lead = 1 if self.max_batch_size > 0 else 0
        out: dict[str, dict[int, str]] = {}
        for t in (*self.inputs, *self.outputs):
            axes = {0: "batch"} if lead else {}
            axes.update({lead + i: f"{t.name}_{i}" for i, d in enumerate(t.dims) if d == -1})
            if axes:
                out[t.name] = axes
        return out

    def export(self, module, example: tuple, path: Path) -> Path:
        """`module` -> ONNX at `path`, graph checked (torch is imported only here)."""
        from export.onnx_tools import export_onnx

        return export_onnx(
            module, example, path, self.input_names, self.output_names, self.dynamic_axes()
        )

    def check(self, reference: list[np.ndarray], got: list[np.ndarray]):
        """The numeric check of an exported file against the source model's outputs."""
        from export.onnx_tools import check_outputs

        return check_outputs(reference, got, atol=self.atol, min_cos=self.min_cos)

    def config(self, notes: dict[str, str] | None = None) -> mc.ModelConfig:
        """The served `config.toml` (`notes`: Triton `parameters`, for operators only)."""
        batched = self.max_batch_size > 0
        return mc.ModelConfig(
            name=self.name,
            max_batch_size=self.max_batch_size,
            input=[t.config() for t in self.inputs],
            output=[t.config() for t in self.outputs],
            dynamic_batching=mc.DynamicBatching(
                max_queue_delay_microseconds=self.max_queue_delay_us,
                preferred_batch_size=[
                    p for p in self.preferred_batch_size if p <= self.max_batch_size
                ],
                default_queue_policy=mc.QueuePolicy(
                    max_queue_size=self.max_queue_size,
                    default_timeout_microseconds=self.default_timeout_us,
                ),
            )
            if batched
            else None,
            instance_group=[mc.InstanceGroup()],
            optimization=mc.Optimization(),
            model_warmup=mc.ModelWarmup(dynamic_dim=self.warmup_dynamic_dim)
            if self.warmup_dynamic_dim is not None
            else mc.ModelWarmup(),
            parameters={k: str(v) for k, v in (notes or {}).items()},
        )
