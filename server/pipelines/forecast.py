"""Demand forecasts (issue 13): item -> its row of the daily history table -> the origin's
features by `kernels.history.origin_features` (the kernel export built every training row with)
-> the forecast model (batched: features, scale -> p50, p90 for each day ahead) -> the first
`horizon_days`, 0 on closed days. An item first sold fewer than `min_history_days` before the
origin gets its category's weekday profile, or the global one (`fallback: true`).

Dates are calendar days: day k of the answer is `as_of + k`; a Saturday or a Christmas-closure
day is in the answer with p50 = p90 = 0 (the shop does not trade then)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from kernels.history import day_number, first_sales, origin_features
from server.budget import Budget
from server.contract.pipelines import ForecastSpec
from server.errors import ModelLoadError, OutOfRange, UnknownItem
from server.pipelines.base import InferModel, ModelSource, infer_within
from server.pipelines.catalog import load_json, load_npy
from server.schemas.v1 import ForecastPoint, ForecastRequest, ForecastResponse

__all__ = ["ForecastPipeline", "History"]


@dataclass(frozen=True, eq=False)
class History:
    """The served history: the table, the items and the fallback profiles."""

    quantity: np.ndarray  # float32 [n_items, n_days]
    price: np.ndarray  # float32 [n_items, n_days]
    rows: dict[str, int]  # item id -> table row
    category: np.ndarray  # int64 [n_items]
    category_items: np.ndarray  # int64 [n_categories]
    category_profile: np.ndarray  # float32 [n_categories, 7, 2]
    global_profile: np.ndarray  # float32 [7, 2]
    first_sale: np.ndarray  # int64 [n_items]: first column with units (n_days if none)

    @property
    def n_days(self) -> int:
        return int(self.quantity.shape[1])

    @classmethod
    def load(cls, folder: Path, spec: ForecastSpec) -> History:
        q = load_npy(folder, spec.quantity).astype(np.float32, copy=False)
        price = load_npy(folder, spec.price).astype(np.float32, copy=False)
        ids = load_json(folder, spec.item_ids)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ModelLoadError(f"{folder}: {spec.item_ids} must be a JSON list of strings")
        if q.ndim != 2 or q.shape != price.shape or q.shape[0] != len(ids) or q.shape[1] < 1:
            raise ModelLoadError(
                f"{folder}: {spec.quantity} {list(q.shape)} and {spec.price} "
                f"{list(price.shape)} must both be [{len(ids)} items, n_days]"
            )
        cat = load_npy(folder, spec.item_category).astype(np.int64, copy=False)
        items = load_npy(folder, spec.category_items).astype(np.int64, copy=False)
        prof = load_npy(folder, spec.category_profile).astype(np.float32, copy=False)
        glob = load_npy(folder, spec.global_profile).astype(np.float32, copy=False)
        n_cat = prof.shape[0] if prof.ndim == 3 else -1
        if prof.shape[1:] != (7, 2) or glob.shape != (7, 2) or items.shape != (n_cat,):
            raise ModelLoadError(
                f"{folder}: profiles must be {spec.category_profile} [n_categories, 7, 2], "
                f"{spec.category_items} [n_categories], {spec.global_profile} [7, 2]"
            )
        if cat.shape != (len(ids),) or (len(cat) and (cat.min() < 0 or cat.max() >= n_cat)):
            raise ModelLoadError(
                f"{folder}: {spec.item_category} must be int [{len(ids)}] in [0, {n_cat})"
            )
        rows = {item: r for r, item in enumerate(ids)}
        return cls(q, price, rows, cat, items, prof, glob, first_sales(q))


class ForecastPipeline:
    kind: ClassVar[str] = "forecast"

    def __init__(
        self, spec: ForecastSpec, model: InferModel, history: History, own: dict[str, str]
    ) -> None:
        self.spec = spec
        self.model = model
        self.history = history
        self.own = own
        self.closed_weekdays = frozenset(spec.closed_weekdays)
        self.closed_dates = frozenset(spec.closed_dates)
        self.day0 = day_number(spec.first_day)  # the kernel's day numbering of column 0

    @classmethod
    def load(cls, spec: ForecastSpec, folder: Path, models: ModelSource) -> ForecastPipeline:
        history = History.load(folder, spec)
        model = models.get_model(spec.model)
        if spec.horizon_days > 28:
            raise ModelLoadError(f"{folder}: horizon_days {spec.horizon_days} > the API's 28")
        origin_features(  # compile (or load) the kernel now, not in the first request
            history.quantity, history.price, 0, np.zeros(1, np.int64), np.zeros(1, np.int64)
        )
        return cls(spec, model, history, {folder.parent.name: folder.name})

    def versions(self) -> dict[str, str]:
        return {**self.own, self.model.name: str(self.model.version)}

    def origin(self, as_of: dt.date | None) -> int:
        """The table column of `as_of` (default: the last); outside the table: 422 naming it."""
        last = self.history.n_days - 1
        if as_of is None:
            return last
        col = (as_of - self.spec.first_day).days
        if not 0 <= col <= last:
            end = self.spec.first_day + dt.timedelta(days=last)
            raise OutOfRange(
                f"$.as_of: {as_of.isoformat()} is outside the served history "
                f"({self.spec.first_day.isoformat()} .. {end.isoformat()})"
            )
        return col

    def closed(self, day: dt.date) -> bool:
        return day.weekday() in self.closed_weekdays or day.strftime("%m-%d") in self.closed_dates

    def _profile(self, row: int, days: list[dt.date]) -> np.ndarray:
        h = self.history
        c = int(h.category[row])
        use = h.category_items[c] > self.spec.min_category_items
        prof = h.category_profile[c] if use else h.global_profile
        return np.stack([prof[d.weekday()] for d in days])

    async def run(self, request: ForecastRequest, budget: Budget) -> ForecastResponse:
        h = self.history
        row = h.rows.get(request.item_id)
        if row is None:
            raise UnknownItem(f"$.item_id: unknown item '{request.item_id}'")
        origin = self.origin(request.as_of)
        n = min(request.horizon_days, self.spec.horizon_days)
        start = self.spec.first_day + dt.timedelta(days=origin)
        days = [start + dt.timedelta(days=k + 1) for k in range(n)]
        fallback = bool(h.first_sale[row] > origin - self.spec.min_history_days)
        if fallback:
            q = self._profile(row, days)
        else:
            with budget.stage("features"):
                x, scale = origin_features(
                    h.quantity,
                    h.price,
                    self.day0,
                    np.array([row], np.int64),
                    np.array([origin], np.int64),
                )
            budget.check("forecast")
            with budget.stage("forecast"):
                inputs = {"features": x, "scale": scale[:, None]}
                res = await infer_within(self.model, inputs, budget, "item_id")
            q = np.stack([res.outputs["p50"][0, :n], res.outputs["p90"][0, :n]], axis=1)
        points = []
        for d, (p50, p90) in zip(days, q.tolist(), strict=True):
            if self.closed(d):
                p50 = p90 = 0.0
            p50 = max(float(p50), 0.0)
            points.append(ForecastPoint(d.isoformat(), round(p50, 4), round(max(p90, p50), 4)))
        return ForecastResponse(
            item_id=request.item_id,
            forecasts=points,
            fallback=fallback,
            model_versions=self.versions(),
        )
