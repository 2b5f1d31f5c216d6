"""Fake models: every pipeline and every /v1 route runs in-process without torch and without
trained weights (the shop they serve is built by tests/server/pipelines/shop.py).

A `FakeModel` is an `InferModel` (server/pipelines/base.py) whose output is a small deterministic
numpy function of its inputs; its inputs are checked against a `ModelConfig` with the engine's own
`check_inputs`, so a pipeline that feeds a model the wrong names, dtypes, shapes or values fails
here as it would over ONNX Runtime.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import numpy as np

from server.batching.envelope import BatchResult
from server.contract.card import GateSummary
from server.contract.model_config import ModelConfig, TensorConfig
from server.engine.validation import check_inputs
from server.errors import DeadlineExceeded, ModelNotFound

__all__ = [
    "FakeModel",
    "FakeModelSource",
    "classifier_fn",
    "query_encoder_fn",
    "ranker_fn",
    "risk_fn",
    "search_encoder_fn",
    "tensor",
]

Fn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def tensor(name: str, data_type: str, dims: list[int], **extra) -> TensorConfig:
    return TensorConfig(name=name, data_type=data_type, dims=dims, **extra)


@dataclass(eq=False)
class FakeModel:
    """An `InferModel`: inputs checked against `config`, outputs from `fn`. `delay_s` makes it slow
    (a deadline that passes while it waits is a DeadlineExceeded, as from the batcher's queue);
    `ns_per_row` is what `expected_ns` reports; `calls` records every inputs dict it got."""

    config: ModelConfig
    fn: Fn
    folder: Path
    _: KW_ONLY
    version: int = 1
    delay_s: float = 0.0
    ns_per_row: int = 1000
    overloaded: bool = False  # what `is_overloaded` reports (admission tests)
    gate: GateSummary | None = None
    name: str = field(init=False)
    calls: list[dict[str, np.ndarray]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.config.name

    @property
    def max_batch_size(self) -> int:
        return self.config.max_batch_size

    def expected_ns(self, rows: int) -> int:
        return self.ns_per_row * rows

    def is_overloaded(self) -> bool:
        return self.overloaded

    async def infer(
        self,
        inputs: dict[str, np.ndarray],
        *,
        deadline_ns: int = 0,
        request_id: str = "",
        where: str = "inputs",
    ) -> BatchResult:
        rows = check_inputs(self.config, inputs, where)
        self.calls.append({k: np.array(v) for k, v in inputs.items()})
        if self.delay_s:
            if deadline_ns and time.monotonic_ns() + self.delay_s * 1e9 > deadline_ns:
                await asyncio.sleep(max(0.0, (deadline_ns - time.monotonic_ns()) / 1e9))
                raise DeadlineExceeded(f"model '{self.name}': the deadline passed in its queue")
            await asyncio.sleep(self.delay_s)
        t0 = time.monotonic_ns()
        outputs = self.fn(inputs)
        for t in self.config.output:
            out = outputs[t.name]
            assert out.shape == (rows, *t.dims), (self.name, t.name, out.shape)
            assert out.dtype == np.float32, (self.name, t.name, out.dtype)
        return BatchResult(outputs, 0, time.monotonic_ns() - t0, rows)


class FakeModelSource:
    """A `ModelSource` over fake models: unknown names are ModelNotFound, as from the engine."""

    def __init__(self, models: dict[str, FakeModel] | None = None) -> None:
        self.models = dict(models or {})

    def get_model(self, name: str) -> FakeModel:
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound(f"unknown model '{name}'")
        return model

    def __getitem__(self, name: str) -> FakeModel:
        return self.models[name]


# -- the models' functions ------------------------------------------------------------------------


def _rows(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32)


def search_encoder_fn(table: np.ndarray) -> Fn:
    """input_ids [n, L] (pad 0) -> embedding: the L2-normalised mean of `table` rows."""

    def fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = inputs["input_ids"]
        valid = (ids != 0)[..., None]
        total = (table[ids] * valid).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
        norm = np.linalg.norm(total, axis=1, keepdims=True)
        return {"embedding": _rows(total / np.maximum(norm, 1e-12))}

    return fn


def classifier_fn(weights: np.ndarray) -> Fn:
    """input_ids [n, L] -> logits [n, labels]: per-label counts of the label's words."""

    def fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"logits": _rows(weights[inputs["input_ids"]].sum(axis=1))}

    return fn


def risk_fn(w_numeric: np.ndarray, w_categorical: list[np.ndarray], bias: float) -> Fn:
    """A logistic model with exact additive contributions (logit units)."""

    def fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x, cat = inputs["numeric"].astype(np.float64), inputs["categorical"]
        contrib = np.concatenate(
            [x * w_numeric, np.stack([w[cat[:, j]] for j, w in enumerate(w_categorical)], 1)],
            axis=1,
        )
        logit = bias + contrib.sum(axis=1, keepdims=True)
        return {
            "probability": _rows(1 / (1 + np.exp(-logit))),
            "logit": _rows(logit),
            "contributions": _rows(contrib),
        }

    return fn


def query_encoder_fn(item_embeddings: np.ndarray) -> Fn:
    """history [n, L] item rows (pad -1) -> user_vector: the mean item embedding."""

    def fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        h = inputs["history"]
        valid = (h >= 0)[..., None]
        total = (item_embeddings[np.maximum(h, 0)] * valid).sum(axis=1)
        return {"user_vector": _rows(total / np.maximum(valid.sum(axis=1), 1))}

    return fn


def ranker_fn(weights: np.ndarray, retrieval_weight: float) -> Fn:
    """features [n, F], retrieval_score [n, 1] -> score: a linear function of both."""

    def fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["features"].astype(np.float64) @ weights
        return {"score": _rows(x[:, None] + retrieval_weight * inputs["retrieval_score"])}

    return fn
