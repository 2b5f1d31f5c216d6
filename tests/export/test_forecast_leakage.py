"""The forecast family's honesty rules on a small synthetic table (no data file, seconds):

- no test target in any training feature or target: every training sample's targets end before
  the cutoff, and rewriting every column at or after it changes no training row;
- choices are made on validation only: the teacher's trees and the student's epochs are the same
  whatever the test weeks hold;
- the fallback profiles read only the columns before the served model's cutoff;
- export and serving build the same features: the served pipeline (the server's own code, over
  the folder export writes) feeds the model exactly export's feature row of (item, origin).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from export.forecast import _write_pipeline, profiles
from export.forecast_data import HORIZON, DemandTable
from export.forecast_features import origins_before, window_samples
from export.forecast_models import StudentConfig, TeacherConfig, seasonal_naive
from export.forecast_window import fit_recipe
from export.options import ExportOptions
from server.budget import Budget
from server.contract.pipelines import load_pipeline_spec
from server.pipelines.forecast import ForecastPipeline
from server.schemas.v1 import ForecastRequest
from tests.server.pipelines.fakes import FakeModel, FakeModelSource
from tests.server.pipelines.forecast_shop import forecast_fn, forecast_model_config

N_ITEMS, N_DAYS = 24, 200
CFGS = (TeacherConfig(800, 10, every=5), StudentConfig(300, 16, 2))


def _table(seed: int = 0) -> DemandTable:
    rng = np.random.default_rng(seed)
    first = dt.date(2011, 1, 3)
    q = rng.poisson(rng.uniform(0.5, 20, (N_ITEMS, 1)), (N_ITEMS, N_DAYS)).astype(np.float32)
    starts = rng.integers(0, 120, N_ITEMS)
    starts[:4] = 0
    for r, s in enumerate(starts):
        q[r, :s] = 0
    sat = np.array([(first + dt.timedelta(days=k)).weekday() == 5 for k in range(N_DAYS)])
    q[:, sat] = 0
    price = np.where(np.cumsum(q, 1) > 0, 2.5, 0).astype(np.float32)
    cats = (np.arange(N_ITEMS) % 3).astype(np.int64)
    return DemandTable(
        q, price, [f"I{r:03d}" for r in range(N_ITEMS)], [""] * N_ITEMS, cats,
        ["A", "B", "C"], first, {},
    )  # fmt: skip


def _poisoned(t: DemandTable, cutoff: int) -> DemandTable:
    """`t` with every column at or after `cutoff` rewritten."""
    q, p = t.quantity.copy(), t.price.copy()
    q[:, cutoff:] = 9999.0
    p[:, cutoff:] = 123.0
    return DemandTable(q, p, t.item_ids, t.titles, t.category, t.categories, t.first_day, {})


def test_training_samples_never_reach_the_cutoff():
    t = _table()
    cutoff = N_DAYS - HORIZON
    first_sale = t.first_sale()
    a = origins_before(t, cutoff, 500, np.random.default_rng(1), first_sale)
    assert a.y is not None and (a.origins + HORIZON < cutoff).all()
    b = origins_before(_poisoned(t, cutoff), cutoff, 500, np.random.default_rng(1), first_sale)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.scale, b.scale)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.y.max() < 9999.0


def test_window_features_read_only_up_to_the_origin():
    t = _table()
    start = N_DAYS - HORIZON
    a = window_samples(t, start, t.first_sale())
    b = window_samples(_poisoned(t, start), start, t.first_sale())
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(seasonal_naive(t, a)[0], seasonal_naive(t, b)[0])
    assert (a.origins == start - 1).all()


def test_choices_are_made_without_the_test_weeks():
    t = _table()
    start = N_DAYS - HORIZON
    valid_start = start - HORIZON
    fs = t.first_sale()
    a = fit_recipe(t, valid_start, CFGS, 0, fs)
    b = fit_recipe(_poisoned(t, start), valid_start, CFGS, 0, fs)
    for k in ("teacher_trees", "student_epochs", "valid_wape"):
        assert a.info[k] == b.info[k]
    # and the validation weeks do move them (the check above is not vacuous)
    c = fit_recipe(_poisoned(t, valid_start + 7), valid_start, CFGS, 0, fs)
    assert c.info["valid_wape"] != a.info["valid_wape"]


def test_the_refit_recipe_uses_every_target_with_the_given_choices():
    t = _table()
    choices = {"teacher_trees": {"p50": 5, "p90": 5}, "student_epochs": 1}
    f = fit_recipe(t, N_DAYS, CFGS, 0, t.first_sale(), choices)
    assert f.info["teacher_trees"] == choices["teacher_trees"] and f.info["student_epochs"] == 1


def test_profiles_read_only_before_the_cutoff():
    t = _table()
    cutoff = N_DAYS - HORIZON
    a, b = profiles(t, cutoff), profiles(_poisoned(t, cutoff), cutoff)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert a["category_profile"].shape == (3, 7, 2)
    assert (a["category_profile"][..., 1] >= a["category_profile"][..., 0]).all()
    assert (a["global_profile"][5] == 0).all()  # Saturday


@pytest.fixture
def served(tmp_path: Path) -> tuple[DemandTable, ForecastPipeline, FakeModel]:
    t = _table()
    opts = ExportOptions(out=tmp_path / "repo")
    opts.out.mkdir()
    _write_pipeline(opts, t, N_DAYS - HORIZON)
    config = forecast_model_config()
    model = FakeModel(config, forecast_fn, tmp_path)
    _, spec = load_pipeline_spec(opts.out / "forecast" / "pipeline.toml")
    folder = opts.out / "forecast" / "1"
    p = ForecastPipeline.load(spec, folder, FakeModelSource({"forecast_model": model}))
    return t, p, model


def test_export_and_serving_build_the_same_features(served):
    t, p, model = served
    start = N_DAYS - HORIZON
    s = window_samples(t, start, t.first_sale())  # the card's test rows, as export builds them
    rng = np.random.default_rng(3)
    for k in rng.choice(len(s), 8, replace=False):
        item, origin = t.item_ids[s.rows[k]], int(s.origins[k])
        req = ForecastRequest(item_id=item, horizon_days=HORIZON, as_of=t.date(origin))
        res = asyncio.run(p.run(req, Budget(5000)))
        assert res.fallback is False
        np.testing.assert_array_equal(model.calls[-1]["features"][0], s.x[k])
        np.testing.assert_array_equal(model.calls[-1]["scale"][0, 0], s.scale[k])
    train = origins_before(t, start, 20, rng, t.first_sale())  # and training rows
    for k in range(5):
        as_of = t.date(int(train.origins[k]))
        req = ForecastRequest(item_id=t.item_ids[train.rows[k]], horizon_days=3, as_of=as_of)
        asyncio.run(p.run(req, Budget(5000)))
        np.testing.assert_array_equal(model.calls[-1]["features"][0], train.x[k])


def test_the_served_closed_days_are_exports(served):
    t, p, _ = served
    closed = t.closed
    for c in range(N_DAYS + HORIZON):
        assert p.closed(t.date(c)) == bool(closed[c])
