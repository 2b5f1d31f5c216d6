"""A tiny demand-forecast repository over a fake model (tests/server/pipelines/fakes.py): the
`forecast/` pipeline folder as export writes it (export/forecast.py), four items over 70 days
from Monday 2011-01-03, and a model whose p50 is its `scale` input times (1 + day ahead / 28)
and whose p90 is twice that."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.history import ORIGIN_FEATURES
from server.contract.card import GateRule, GateSummary
from server.contract.model_config import ModelConfig
from server.contract.pipelines import ForecastSpec
from tests.server.pipelines.fakes import FakeModel, FakeModelSource, tensor
from tests.server.pipelines.shop import write_pipeline

__all__ = [
    "FIRST_DAY",
    "ITEMS",
    "N_DAYS",
    "ForecastShop",
    "build_forecast_shop",
    "forecast_fn",
    "forecast_model_config",
]

FIRST_DAY = dt.date(2011, 1, 3)  # a Monday
N_DAYS = 70
HORIZON = 28
# item -> (category, first column sold): OLD items have history; NEW ones fall back
ITEMS = {"OLD1": (0, 0), "OLD2": (0, 5), "NEW1": (0, 60), "NEW2": (1, 65)}


def forecast_fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    s = inputs["scale"].astype(np.float32)
    p50 = s * (1 + np.arange(HORIZON, dtype=np.float32) / HORIZON)[None, :]
    return {"p50": p50.astype(np.float32), "p90": (2 * p50).astype(np.float32)}


@dataclass
class ForecastShop:
    repo: Path
    models: FakeModelSource
    spec: ForecastSpec
    quantity: np.ndarray
    price: np.ndarray

    @property
    def folder(self) -> Path:
        return self.repo / "forecast" / "1"


def forecast_model_config() -> ModelConfig:
    """The served forecast model's contract: features and scale in, p50 and p90 per day out."""
    return ModelConfig(
        name="forecast_model",
        max_batch_size=64,
        input=[
            tensor("features", "TYPE_FP32", [len(ORIGIN_FEATURES)]),
            tensor("scale", "TYPE_FP32", [1]),
        ],
        output=[tensor("p50", "TYPE_FP32", [HORIZON]), tensor("p90", "TYPE_FP32", [HORIZON])],
    )


def build_forecast_shop(root: Path) -> ForecastShop:
    rng = np.random.default_rng(0)
    q = np.zeros((len(ITEMS), N_DAYS), np.float32)
    price = np.zeros_like(q)
    for r, (_, first) in enumerate(ITEMS.values()):
        q[r, first:] = rng.poisson(3 + r, N_DAYS - first)
        q[r, first] = max(q[r, first], 1.0)
        price[r, first:] = 1.5 + r
    days = [FIRST_DAY + dt.timedelta(days=k) for k in range(N_DAYS)]
    q[:, [d.weekday() == 5 for d in days]] = 0.0  # no trading on Saturdays
    config = forecast_model_config()
    models_dir = root / "models" / "forecast_model" / "1"
    models_dir.mkdir(parents=True, exist_ok=True)
    gate = GateSummary(passed=True, rules=[GateRule("WAPE p50", 0.8, 1.0, True)])
    model = FakeModel(config, forecast_fn, models_dir, version=1, gate=gate)
    spec = ForecastSpec(
        model="forecast_model",
        first_day=FIRST_DAY,
        closed_weekdays=[5],
        closed_dates=["12-25"],
        min_category_items=1,
    )
    folder = write_pipeline(root / "repo", "forecast", spec)
    np.save(folder / spec.quantity, q)
    np.save(folder / spec.price, price)
    (folder / spec.item_ids).write_text(json.dumps(list(ITEMS)))
    np.save(folder / spec.item_category, np.array([c for c, _ in ITEMS.values()], np.int64))
    np.save(folder / spec.category_items, np.array([3, 1], np.int64))
    prof = np.zeros((2, 7, 2), np.float32)
    prof[0, :, 0], prof[0, :, 1] = 2.0, 5.0
    prof[1, :, 0], prof[1, :, 1] = 7.0, 9.0
    np.save(folder / spec.category_profile, prof)
    np.save(folder / spec.global_profile, np.stack([np.full(7, 1.0), np.full(7, 3.0)], 1))
    models = FakeModelSource({"forecast_model": model})
    return ForecastShop(root / "repo", models, spec, q, price)
