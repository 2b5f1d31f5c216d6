"""Forecast metrics over one window: every eligible item at one origin, HORIZON days ahead.

- WAPE (p50): sum |y - p50| / sum y over every (item, day);
- MASE (p50): per item, its mean absolute error over the window divided by its in-sample
  seasonal-naive error (mean |y[d] - y[d - 7]| over the item's days before the origin, from its
  first sale), averaged over the items whose in-sample error is > 0;
- pinball p90: sum of the 0.9 pinball loss / sum y (scaled like WAPE);
- coverage p90: the share of open (item, day) pairs with y <= p90 (closed days are 0 <= 0 for
  every model and are left out).
Closed days are zeroed in every forecast before scoring (`apply_closed`).
"""

from __future__ import annotations

import numpy as np

from export.forecast_data import HORIZON, DemandTable
from export.forecast_features import Samples
from export.forecast_models import pinball

__all__ = ["METRIC", "apply_closed", "mase_scale", "window_metrics"]

METRIC = "WAPE p50"


def open_days(closed: np.ndarray, origin: int) -> np.ndarray:
    """bool [HORIZON]: the open days after `origin`."""
    return ~closed[origin + 1 : origin + 1 + HORIZON]


def apply_closed(q: tuple[np.ndarray, np.ndarray], open_: np.ndarray):
    return q[0] * open_, q[1] * open_


def mase_scale(t: DemandTable, s: Samples, first_sale: np.ndarray) -> np.ndarray:
    """float64 [n]: each sample's in-sample seasonal-naive MAE up to its origin."""
    out = np.zeros(len(s))
    for k, (r, o) in enumerate(zip(s.rows.tolist(), s.origins.tolist(), strict=True)):
        a = max(int(first_sale[r]), 0) + 7
        if o >= a:
            y = t.quantity[r, a - 7 : o + 1]
            out[k] = float(np.abs(y[7:] - y[:-7]).mean())
    return out


def window_metrics(
    y: np.ndarray, q: tuple[np.ndarray, np.ndarray], open_: np.ndarray, scale: np.ndarray
) -> dict[str, float]:
    p50, p90 = q
    total = max(float(y.sum()), 1e-9)
    err = np.abs(y - p50)
    ok = scale > 0
    mase = float((err[ok].mean(1) / scale[ok]).mean()) if ok.any() else float("nan")
    cover = (y <= p90 + 1e-6)[:, open_]
    return {
        "WAPE p50": round(float(err.sum()) / total, 4),
        "MASE p50": round(mase, 4),
        "pinball p90": round(float(pinball(y, p90, 0.9).sum()) / total, 4),
        "coverage p90": round(float(cover.mean()), 4),
    }
