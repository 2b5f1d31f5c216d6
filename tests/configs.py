"""Model configs for tests, built as the contract's Structs (one place, instead of TOML text
repeated in every test that needs a small model)."""

from __future__ import annotations

from typing import Any

from server.contract.model_config import ModelConfig, TensorConfig, encode_config

__all__ = ["mlp_config", "tensor", "toml"]


def tensor(name: str, dims: list[int], data_type: str = "TYPE_FP32", **kw: Any) -> TensorConfig:
    return TensorConfig(name=name, data_type=data_type, dims=dims, **kw)  # type: ignore[arg-type]


def mlp_config(name: str = "mlp", max_batch_size: int = 1024, **fields: Any) -> ModelConfig:
    """The demo MLP's contract (features FP32 [64] -> score FP32 [1]) with `fields` set."""
    return ModelConfig(
        name=name,
        max_batch_size=max_batch_size,
        input=[tensor("features", [64])],
        output=[tensor("score", [1])],
        **fields,
    )


def toml(config: ModelConfig) -> str:
    return encode_config(config).decode()
