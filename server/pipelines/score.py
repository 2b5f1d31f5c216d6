"""Purchase-intent / risk score: session features -> the additive student -> probability, label
at the threshold stated in the card, and exact per-feature contributions (logit units)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from server.budget import Budget
from server.errors import BadRequest
from server.engine.model import LoadedModel

__all__ = ["ScorePipeline", "ScoreResult"]


@dataclass(slots=True)
class ScoreResult:
    probability: float
    label: bool
    base: float
    explanation: list[tuple[str, float]]
    version: int


class ScorePipeline:
    """Preprocessing from the model's `preprocess.json` (written by export beside the ONNX)."""

    def __init__(self, model: LoadedModel, folder: Path) -> None:
        self.model = model
        params = model.config.parameters
        pre = json.loads((folder / str(params.get("preprocess", "preprocess.json"))).read_text())
        self.numeric: list[str] = pre["numeric"]
        self.log1p = {c for c in pre["log1p"]}
        self.mean = np.asarray(pre["mean"], np.float64)
        self.std = np.asarray(pre["std"], np.float64)
        self.categorical: list[str] = pre["categorical"]
        self.vocab = {c: {v: i for i, v in enumerate(vals)} for c, vals in pre["vocab"].items()}
        self.threshold = float(params.get("threshold", pre.get("threshold", 0.5)))
        self.bias = float(pre["bias"])
        self.feature_names: list[str] = list(params.get("feature_names", pre["contributions"]))

    def features(self, session: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        num = np.empty(len(self.numeric), np.float64)
        for i, name in enumerate(self.numeric):
            v = float(session[name])
            if not np.isfinite(v):
                raise BadRequest(f"session.{name}: must be a finite number")
            num[i] = np.log1p(max(v, 0.0)) if name in self.log1p else v
        x = ((num - self.mean) / self.std).astype(np.float32)[None, :]
        cat = np.array(
            [[self.vocab[c].get(_category(session[c]), 0) for c in self.categorical]],
            dtype=np.int64,
        )
        return x, cat

    async def score(self, session: dict[str, Any], budget: Budget) -> ScoreResult:
        with budget.stage("features"):
            x, cat = self.features(session)
        budget.check("model")
        with budget.stage("model"):
            res = await self.model.infer(
                {"numeric": x, "categorical": cat}, deadline_ns=budget.deadline_ns, where="session"
            )
        prob = float(res.outputs["probability"][0, 0])
        contrib = res.outputs["contributions"][0]
        pairs = sorted(
            zip(self.feature_names, (float(c) for c in contrib), strict=True),
            key=lambda p: -abs(p[1]),
        )
        return ScoreResult(prob, prob >= self.threshold, self.bias, pairs, self.model.version)


def _category(value: Any) -> str:
    # the dataset's integer codes (Browser, Region, ...) are vocabulary strings
    if isinstance(value, bool):
        return str(value).upper()
    return str(value)
