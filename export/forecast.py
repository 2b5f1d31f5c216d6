"""The `forecast` family: demand forecasts (issue 13, `POST /v1/forecast`).

1. data (`forecast_data`): Online Retail as a per-item daily table of net units and last prices,
   its quirks handled (Saturdays and the Christmas closure closed, the partial last day dropped);
2. features (`forecast_features`): every training and evaluation row built by the serving
   kernel `kernels.history`;
3. per window (`forecast_window`): the last 28 days (test, the pre-Christmas peak) and an
   earlier non-peak 28 days, each with choices on its own validation weeks and models refit on
   every target before it: seasonal naive, moving average, the quantile-tree teacher, the
   distilled MLP student in ONNX fp32 and int8;
4. the card and gate (`forecast_card`; int8 or fp32 chosen on validation), then
   `forecast_model/` (the test window's model, or with `--refit` the recipe refit on all the
   data) and the `forecast/` pipeline (the table, item ids, categories and fallback profiles).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import partial

import numpy as np

from export import onnx_tools
from export.card import served_variant, spec_summary
from export.forecast_card import build_rows, forecast_card
from export.forecast_data import (
    CLOSED_MONTH_DAYS,
    CLOSED_WEEKDAYS,
    HORIZON,
    MIN_HISTORY_DAYS,
    DemandTable,
    load_demand,
)
from export.forecast_features import Samples, window_samples
from export.forecast_models import StudentConfig, TeacherConfig
from export.forecast_window import FORECAST, Window, fit_recipe, onnx_files, run_window
from export.options import ExportOptions, finish
from export.repository import ModelFolder
from export.training import param_count, seed_everything
from server.contract.pipelines import ForecastSpec

__all__ = ["PIPELINE", "TIERS", "export_forecast", "profiles"]

PIPELINE = "forecast"
NON_PEAK_START = "2011-06-10"  # a Friday, 22 weeks before the test weeks; no bank holiday in it
MIN_CATEGORY_ITEMS = 5


@dataclass(frozen=True)
class Tier:
    budget_s: int  # the wall budget on a quiet 2-core machine
    items: int | None  # the top items by units (None: all)
    teacher: TeacherConfig
    student: StudentConfig
    latency_runs: int
    non_peak: bool = True  # also evaluate the earlier non-peak window (doubles the training)


TIERS = {
    "quick": Tier(0, 60, TeacherConfig(2_000, 20, every=5), StudentConfig(600, 32, 3), 20, False),
    "preview": Tier(
        30,
        None,
        TeacherConfig(20_000, 60, every=10),
        StudentConfig(6_000, 96, 8, budget_s=6),
        100,
        False,
    ),
    "full": Tier(
        180,
        None,
        TeacherConfig(120_000, 200, every=10),
        StudentConfig(30_000, 256, 30, budget_s=25),
        300,
    ),
}


def profiles(t: DemandTable, cutoff: int, days: int = 56) -> dict[str, np.ndarray]:
    """The fallback's profiles from the `days` columns before `cutoff`: per category and weekday
    (and over all items), p50 = the mean units per item-day of the items sold before the cutoff,
    p90 = the 90th percentile of those item-days."""
    lo = max(cutoff - days, 0)
    sold = (t.quantity[:, :cutoff] > 0).any(1)
    q = t.quantity[:, lo:cutoff]
    wd = np.array([t.date(c).weekday() for c in range(lo, cutoff)])
    n_cat = len(t.categories)
    cat = np.zeros((n_cat, 7, 2), np.float32)
    glob = np.zeros((7, 2), np.float32)
    counts = np.zeros(n_cat, np.int64)
    for d in range(7):
        cols = q[:, wd == d]
        if cols.size == 0:
            continue
        glob[d] = [cols[sold].mean(), np.percentile(cols[sold], 90)]
        for c in range(n_cat):
            m = sold & (t.category == c)
            counts[c] = int(m.sum())
            if m.any():
                cat[c, d] = [cols[m].mean(), np.percentile(cols[m], 90)]
    cat[..., 1] = np.maximum(cat[..., 1], cat[..., 0])
    glob[:, 1] = np.maximum(glob[:, 1], glob[:, 0])
    return {"category_profile": cat, "global_profile": glob, "category_items": counts}


def _table(opts: ExportOptions, tier: Tier) -> DemandTable:
    t = load_demand()
    if tier.items is not None:
        top = np.argsort(-t.quantity.sum(1), kind="stable")[: tier.items]
        t = t.subset(np.sort(top))
    opts.log(f"[forecast] table {t.quantity.shape[0]} items x {t.n_days} days from {t.first_day}")
    return t


def _latency(t: DemandTable, w: Window, runs: int) -> dict[str, dict[str, float]]:
    """ms per call: the teacher's predict of one item's 28 days (both quantiles, scikit-learn),
    the students' ONNX sessions at batch 1 and 64 (one thread)."""
    s = window_samples(t, w.start, t.first_sale())
    one = Samples(s.rows[:1], s.origins[:1], s.x[:1], s.scale[:1], None)
    assert w.fitted is not None
    predict = partial(w.fitted.teacher.predict, t, one)  # type: ignore[attr-defined]
    out = {"teacher": {"batch_1": onnx_tools.measure_latency_ms(predict, runs)}}
    feeds = {"features": s.x, "scale": s.scale[:, None]}
    for v, path in w.files.items():
        sess = onnx_tools.session(path)
        out[v] = onnx_tools.latency_by_batch(sess, onnx_tools.head_feeds(feeds, (1, 64)), runs)
    return out


def export_forecast(opts: ExportOptions) -> None:
    """Build, gate and publish `forecast_model` and the `forecast/` pipeline, on one thread:
    OpenMP's trees spin for minutes on a shared 2-core machine (a 2,000-row fit took 1.4 s on
    two threads, 0.5 s on one)."""
    from threadpoolctl import threadpool_limits

    seed_everything(opts.seed, threads=1)
    with threadpool_limits(1):
        _export(opts)


def _export(opts: ExportOptions) -> None:
    t0 = time.perf_counter()
    name = "quick" if opts.quick else opts.tier
    tier = TIERS[name]
    t = _table(opts, tier)
    closed = t.closed
    work = opts.cache / "forecast"
    cfgs = (tier.teacher, tier.student)
    test = run_window(t, "test", t.n_days - HORIZON, closed, cfgs, opts.seed, work, opts.log)
    windows = [test]
    if tier.non_peak:
        start = t.column(NON_PEAK_START)
        windows.append(run_window(t, "non-peak", start, closed, cfgs, opts.seed, work, opts.log))
    latency = _latency(t, test, tier.latency_runs)
    assert test.fitted is not None
    sizes = {
        "student_params": param_count(test.fitted.student),
        **{f"{v}_bytes": p.stat().st_size for v, p in test.files.items()},
    }
    rows = build_rows(test, latency, sizes)
    served = served_variant(rows, "batch_1", lower_is_better=True)
    files, cutoff = test.files, test.start
    model_note = "the evaluated model (targets before the test weeks)"
    if opts.refit:
        first_sale = t.first_sale()
        refit = fit_recipe(t, t.n_days, cfgs, opts.seed + 2, first_sale, test.choices)
        example = window_samples(t, t.n_days - HORIZON, first_sale)
        files, _ = onnx_files(refit.student, example, work / "refit")
        cutoff = t.n_days
        model_note = "refit on every target of the data (--refit): NOT the evaluated model"
    wall = round(time.perf_counter() - t0, 1)
    extra = {
        "export_check": test.check,
        "served_model": model_note,
        "data": {k: v for k, v in t.report.items() if k != "cleaning"},
        "cleaning": t.report["cleaning"],
        "budget": {
            "tier": name,
            "budget_s": tier.budget_s,
            "wall_s": wall,
            "teacher_rows": tier.teacher.rows,
            "teacher_max_trees": tier.teacher.max_iter,
            "student_samples": tier.student.samples,
            "student_hidden": tier.student.hidden,
            "student_max_epochs": tier.student.epochs,
        },
        "choices": {w.name: w.choices for w in windows},
        "categories": "last word of the description (MUG, HOLDER ...), fewer than 10 items: OTHER",
    }
    tier_of_card = "full" if opts.quick else opts.tier
    card = forecast_card(t, windows, rows, served, extra, tier_of_card, opts.quick)
    opts.log(f"[forecast] {wall} s; served {served}; test WAPE " + json.dumps(
        {k: v["WAPE p50"] for k, v in test.metrics.items()}))  # fmt: skip
    _publish(opts, files, served, card)
    _write_pipeline(opts, t, cutoff)


def _publish(opts: ExportOptions, files: dict, served: str, card) -> None:
    folder = ModelFolder(opts.out, FORECAST.name)
    (folder.version / "model.onnx").write_bytes(files[served].read_bytes())
    if served != "student":
        (folder.version / "model_fp32.onnx").write_bytes(files["student"].read_bytes())
    notes = {"variant": served, "pipeline": PIPELINE, "horizon_days": str(HORIZON)}
    folder.write_config(FORECAST.config(notes))
    card.extra["contract"] = spec_summary(FORECAST)
    finish(opts, folder, card)


def _write_pipeline(opts: ExportOptions, t: DemandTable, cutoff: int) -> None:
    """`forecast/`: the whole table (requests may ask for any origin), the profiles from the
    columns before the served model's cutoff."""
    spec = ForecastSpec(
        model=FORECAST.name,
        first_day=t.first_day,
        horizon_days=HORIZON,
        min_history_days=MIN_HISTORY_DAYS,
        min_category_items=MIN_CATEGORY_ITEMS,
        closed_weekdays=list(CLOSED_WEEKDAYS),
        closed_dates=list(CLOSED_MONTH_DAYS),
    )
    folder = ModelFolder(opts.out, PIPELINE)
    v = folder.version
    np.save(v / spec.quantity, t.quantity.astype(np.float32))
    np.save(v / spec.price, t.price.astype(np.float32))
    (v / spec.item_ids).write_text(json.dumps(t.item_ids))
    np.save(v / spec.item_category, t.category.astype(np.int64))
    for key, arr in profiles(t, cutoff).items():
        np.save(v / getattr(spec, key), arr)
    (v / "categories.json").write_text(json.dumps(t.categories))
    folder.write_pipeline(spec)
    folder.publish()
