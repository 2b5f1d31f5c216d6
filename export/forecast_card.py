"""The `forecast_model` card: rows for seasonal-naive (the baseline), the quantile-tree teacher,
the student fp32 and int8 on the test weeks, the gate on WAPE (lower is better), and sections
with the moving average, the earlier non-peak window, the data's quirks and the choices."""

from __future__ import annotations

from export.card import Card, Row, check_gates
from export.forecast_data import CLOSED_MONTH_DAYS, HORIZON, MIN_HISTORY_DAYS, DemandTable
from export.forecast_metrics import METRIC
from export.forecast_window import Window

__all__ = ["NOTES", "build_rows", "forecast_card"]

NOTES = {
    "baseline": "seasonal naive: the same weekday in the last week before the origin (the last "
    "7 days repeated, so Saturdays stay 0); p90: the 90th percentile of that weekday's last 4",
    "teacher": "scikit-learn HistGradientBoostingRegressor, quantile loss (p50 and p90), one row "
    "per (item, origin, day ahead): lag, rolling, calendar and last-price features",
    "student": "MLP distilled from the teacher's quantiles, direct multi-horizon (28 x 2 outputs, "
    "p90 = p50 + softplus(gap)), ONNX fp32",
    "student-int8": "the student, dynamic int8 (per-channel Gemm/MatMul weights)",
}
NOT_NON_PEAK = (
    "\n\nThe earlier non-peak window is evaluated at the full tier only (it trains the recipe "
    "twice more): not done at this tier."
)
VARIANT_OF = {
    "baseline": "seasonal naive",
    "teacher": "teacher",
    "student": "student",
    "student-int8": "student-int8",
}


def build_rows(w: Window, latency: dict, sizes: dict) -> list[Row]:
    rows = []
    for variant, key in VARIANT_OF.items():
        test = w.metrics[key]
        kw: dict = {"note": NOTES[variant], "valid_metric": w.valid[key][METRIC]}
        if variant == "baseline":
            kw["runtime"] = "numpy"
        elif variant == "teacher":
            kw.update(runtime="sklearn", latency_ms=latency["teacher"])
        else:
            kw.update(
                params=sizes["student_params"],
                size_bytes=sizes[f"{variant}_bytes"],
                latency_ms=latency[variant],
            )
        others = {k: v for k, v in test.items() if k != METRIC}
        rows.append(Row(variant, test[METRIC], others, **kw))
    return rows


def _table(windows: list[Window]) -> str:
    keys = list(next(iter(windows[0].metrics.values())))
    head = "| window | model | " + " | ".join(keys) + " | valid WAPE p50 |"
    lines = [head, "|" + "---|" * (len(keys) + 3)]
    for w in windows:
        for model, m in w.metrics.items():
            cells = " | ".join(f"{m[k]:.4f}" for k in keys)
            lines.append(f"| {w.name} | {model} | {cells} | {w.valid[model][METRIC]:.4f} |")
    return "\n".join(lines)


def _window_text(t: DemandTable, w: Window) -> str:
    return (
        f"{w.name}: origin {t.date(w.start - 1)} (the model saw columns up to it), forecasts of "
        f"{t.date(w.start)} .. {t.date(w.start + HORIZON - 1)} for the {w.items} items first "
        f"sold at least {MIN_HISTORY_DAYS} days before the origin ({w.items * HORIZON} "
        f"item-days); {w.fallback_items} younger items get a profile (not in these metrics); "
        f"validation (choices) {t.date(w.start - HORIZON)} .. {t.date(w.start - 1)}, models "
        f"of the choices trained on targets before it, the evaluated models refit on targets "
        f"before {t.date(w.start)} with the same choices"
    )


def _data_text(t: DemandTable) -> str:
    r = t.report
    p = r["partial_last_day_dropped"]
    return (
        f"{r['items']} products x {r['days']} calendar days ({t.first_day} .. "
        f"{t.date(t.n_days - 1)}). Units: purchases by known customers (export/data.py "
        f"load_retail) minus {r['units_cancelled_netted']:,.0f} units of cancellation lines "
        f"matched to a purchase (export/cancellation_data.py label_cancellations: "
        f"{r['cancellation_matching']['matched']} of {r['cancellation_matching']['cancellation_lines']}"
        f" lines), on the day of the cancellation (a day never depends on a later one), daily "
        f"net floored at 0 ({r['units_floored_at_zero']:,.0f} units). Partial last day "
        f"{p['date']} (trading stopped at {p['last_time']}, {p['lines']} lines) dropped. "
        f"Closed days: every Saturday (the shop does not trade) and the Christmas closure "
        f"({', '.join(CLOSED_MONTH_DAYS)}): {r['closed_days']} days; every model forecasts 0 "
        f"there (the served pipeline too) and coverage counts open days only. Bank holidays "
        f"are not modelled ({r['trading_days_without_sales']} other days without sales). The "
        "test weeks are the pre-Christmas peak: the earlier non-peak window is evaluated by "
        "the same recipe, trained only on targets before it."
    )


def forecast_card(
    t: DemandTable, windows: list[Window], rows, served: str, extra: dict, tier: str, quick: bool
) -> Card:
    gate = check_gates(
        rows, served=served, speed_batch=None, quick=quick, lower_is_better=True, tier=tier
    )
    test = windows[0]
    return Card(
        "forecast_model",
        "demand forecasts: item daily history -> kernels.history features at the origin -> "
        f"p50 and p90 for each of the next {HORIZON} days; metric: test WAPE of p50 (lower is "
        "better)",
        {
            "name": "Online Retail (UCI) daily units per product, net of matched cancellations",
            "rows": test.items * HORIZON,
            "split": f"by time: test {t.date(test.start)} .. {t.date(test.start + HORIZON - 1)},"
            f" validation the 28 days before, training before that",
        },
        METRIC,
        rows,
        gate,
        extra={
            **extra,
            "served_variant": served,
            "speed_note": "the teacher is scikit-learn (no same-runtime teacher): speed_batch=None;"
            " latency: the teacher's predict of one item's 28 days (both quantiles) in "
            "scikit-learn, the students' ONNX Runtime session on one thread",
            "windows": {
                w.name: {"start": str(t.date(w.start)), "test": w.metrics, "valid": w.valid}
                for w in windows
            },
            "sections": {
                "Test set": "\n\n".join(_window_text(t, w) for w in windows)
                + ("" if len(windows) > 1 else NOT_NON_PEAK),
                "All models, both windows": _table(windows),
                "Data": _data_text(t),
                "Choices": "; ".join(f"{w.name}: {_choices(w)}" for w in windows),
                "Budget and serving": _budget_text(extra),
            },
        },
    )


def _budget_text(extra: dict) -> str:
    b = extra["budget"]
    return (
        f"Tier {b['tier']}: budget {b['budget_s']} s wall on a quiet 2-core machine (one "
        f"thread); this build took {b['wall_s']} s. Teacher: {b['teacher_rows']:,} (item, "
        f"origin, day ahead) rows drawn in proportion to the item's scale, at most "
        f"{b['teacher_max_trees']} trees per quantile; student: {b['student_samples']:,} "
        f"origins x 28 days, hidden {b['student_hidden']}, at most {b['student_max_epochs']} "
        f"epochs. Served model: {extra['served_model']}. Fallback categories: "
        f"{extra['categories']}; an item first sold fewer than 28 days before the origin gets "
        "its category's weekday profile (mean units and 90th percentile per item-day over the "
        "56 days before the served model's cutoff), or the global one."
    )


def _choices(w: Window) -> str:
    c = w.choices
    return f"teacher trees {c['teacher_trees']}, student epochs {c['student_epochs']}"
