"""ForecastPipeline over the fake model (tests/server/pipelines/forecast_shop.py): the model gets
the kernel's features of the origin, dates are real calendar days with closed days at 0, p90 >=
p50, young items fall back to their category's (or the global) profile, and bad origins, unknown
items and broken artifacts fail naming the field or the file."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from kernels.history import origin_features
from server.budget import Budget
from server.errors import ModelLoadError, ModelNotFound, OutOfRange, UnknownItem
from server.pipelines.forecast import ForecastPipeline
from server.schemas.v1 import ForecastRequest
from tests.server.pipelines.fakes import FakeModelSource
from tests.server.pipelines.forecast_shop import (
    FIRST_DAY,
    N_DAYS,
    ForecastShop,
    build_forecast_shop,
)


@pytest.fixture
def fshop(tmp_path: Path) -> ForecastShop:
    return build_forecast_shop(tmp_path)


def _load(s: ForecastShop, models=None) -> ForecastPipeline:
    return ForecastPipeline.load(s.spec, s.folder, models or s.models)


def _ask(p: ForecastPipeline, item: str, h: int = 7, as_of=None, budget=None):
    req = ForecastRequest(item_id=item, horizon_days=h, as_of=as_of)
    return asyncio.run(p.run(req, budget or Budget(5000)))


def test_the_model_gets_the_kernels_features_of_the_origin(fshop: ForecastShop):
    p = _load(fshop)
    as_of = FIRST_DAY + dt.timedelta(days=40)
    budget = Budget(5000, request_id="r1")
    res = _ask(p, "OLD1", 10, as_of, budget)
    call = fshop.models["forecast_model"].calls[-1]
    day0 = (FIRST_DAY - dt.date(1970, 1, 1)).days
    x, scale = origin_features(fshop.quantity, fshop.price, day0, np.array([0]), np.array([40]))
    np.testing.assert_array_equal(call["features"], x)
    np.testing.assert_array_equal(call["scale"], scale[:, None])
    assert res.fallback is False and res.item_id == "OLD1"
    assert res.model_versions == {"forecast": "1", "forecast_model": "1"}
    assert set(budget.stages) == {"features", "forecast"}
    dates = [dt.date.fromisoformat(f.date) for f in res.forecasts]
    assert dates == [as_of + dt.timedelta(days=k) for k in range(1, 11)]
    for k, (d, f) in enumerate(zip(dates, res.forecasts, strict=True)):
        if d.weekday() == 5:
            assert f.p50 == f.p90 == 0.0
        else:
            assert f.p50 == pytest.approx(float(scale[0]) * (1 + k / 28), rel=1e-4)
        assert f.p90 >= f.p50


def test_as_of_defaults_to_the_last_day_and_the_history_stops_there(fshop: ForecastShop):
    p = _load(fshop)
    res = _ask(p, "OLD2", 28)
    last = FIRST_DAY + dt.timedelta(days=N_DAYS - 1)
    assert res.forecasts[0].date == (last + dt.timedelta(days=1)).isoformat()
    assert len(res.forecasts) == 28
    # an origin sees only the columns up to it: later history changes nothing
    early = FIRST_DAY + dt.timedelta(days=30)
    before = _ask(p, "OLD2", 5, early)
    fshop.quantity[:, 31:] = 1000.0
    np.save(fshop.folder / "quantity.npy", fshop.quantity)
    assert _ask(_load(fshop), "OLD2", 5, early) == before


def test_young_items_fall_back_to_their_profile(fshop: ForecastShop):
    p = _load(fshop)
    calls = len(fshop.models["forecast_model"].calls)
    res = _ask(p, "NEW1", 14)  # category 0: 3 items, its own profile
    assert res.fallback is True
    open_ = [f for f in res.forecasts if dt.date.fromisoformat(f.date).weekday() != 5]
    assert {(f.p50, f.p90) for f in open_} == {(2.0, 5.0)}
    res2 = _ask(p, "NEW2", 14)  # category 1: one item, under min_category_items: global
    assert res2.fallback is True
    assert {(f.p50, f.p90) for f in res2.forecasts if f.p50} == {(1.0, 3.0)}
    assert len(fshop.models["forecast_model"].calls) == calls  # no model call for a profile
    # an old item at an origin before its history is long enough falls back too
    assert _ask(p, "OLD2", 3, FIRST_DAY + dt.timedelta(days=20)).fallback is True


def test_closed_dates_are_zero(tmp_path: Path):
    s = build_forecast_shop(tmp_path)
    p = _load(s)
    assert p.closed(dt.date(2011, 12, 25)) and p.closed(dt.date(2011, 1, 8))  # a Saturday
    assert not p.closed(dt.date(2011, 1, 7))


def test_bad_origin_and_unknown_item_name_the_field(fshop: ForecastShop):
    p = _load(fshop)
    with pytest.raises(OutOfRange, match=r"\$\.as_of"):
        _ask(p, "OLD1", 3, FIRST_DAY - dt.timedelta(days=1))
    with pytest.raises(OutOfRange, match=r"\$\.as_of"):
        _ask(p, "OLD1", 3, FIRST_DAY + dt.timedelta(days=N_DAYS))
    with pytest.raises(UnknownItem, match=r"\$\.item_id") as e:
        _ask(p, "NOPE", 3)
    assert e.value.status_code == 404 and e.value.code == "unknown_item"
    assert _ask(p, "OLD1", 1, FIRST_DAY).fallback is True  # the first day itself is in range


def test_broken_artifacts_fail_at_load_naming_the_file(fshop: ForecastShop):
    np.save(fshop.folder / "price.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(ModelLoadError, match="price.npy"):
        _load(fshop)


def test_bad_category_file_fails_at_load(fshop: ForecastShop):
    np.save(fshop.folder / "item_category.npy", np.array([0, 1, 2, 9]))
    with pytest.raises(ModelLoadError, match="item_category.npy"):
        _load(fshop)


def test_a_missing_model_fails_at_load(fshop: ForecastShop):
    with pytest.raises(ModelNotFound):
        _load(fshop, FakeModelSource({}))
