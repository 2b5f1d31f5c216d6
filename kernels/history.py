"""Demand-forecast features from a per-item daily history table (issue 13, `POST /v1/forecast`).

One module for export (which builds every training row with it) and the server (which builds the
row of a request with it), so the two cannot drift. The table is `quantity` float32
[n_items, n_days] (net units per calendar day, column 0 is the day `day0`, days since 1970-01-01)
and `price` float32 [n_items, n_days] (the last unit price known on or before each day, 0 before
an item's first sale). An origin `o` is a column: its features read columns `<= o` only.

Origin features (`ORIGIN_FEATURES`, all but `log_scale` divided by the item's scale, the mean of
its last 56 days, at least `MIN_SCALE`): the last 28 days, rolling means over 7/14/28/56/112
days, the 28-day standard deviation, the share of selling days over 28 and 112, days since the
last and the first sale, the log scale, the log last price and its 28-day change, and the origin
day's calendar (weekday one-hot, day of month, month as sine/cosine, days to Christmas).
Target features (`TARGET_FEATURES`, the trees' rows are (item, origin, day ahead h)): h, the
target day's weekday one-hot, its days to Christmas and day of month, and the value of the same
weekday in the last week before the origin, and the mean of the last four.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from numba import njit

__all__ = [
    "LAGS",
    "MIN_SCALE",
    "ORIGIN_FEATURES",
    "TARGET_FEATURES",
    "day_number",
    "first_sales",
    "origin_features",
    "target_features",
]

LAGS = 28
MIN_SCALE = 0.05
_WINDOWS = (7, 14, 28, 56, 112)
ORIGIN_FEATURES = (
    [f"lag_{k}" for k in range(LAGS)]
    + [f"mean_{w}" for w in _WINDOWS]
    + ["std_28", "selling_share_28", "selling_share_112", "days_since_last_sale"]
    + ["days_since_first_sale", "log_scale", "log_price", "price_change_28"]
    + [f"weekday_{d}" for d in range(7)]
    + ["day_of_month", "month_sin", "month_cos", "days_to_christmas", "christmas_60"]
)
TARGET_FEATURES = (
    ["days_ahead"]
    + [f"target_weekday_{d}" for d in range(7)]
    + ["target_days_to_christmas", "target_day_of_month", "same_weekday_last", "same_weekday_4"]
)
_N_ORIGIN = len(ORIGIN_FEATURES)
_N_TARGET = len(TARGET_FEATURES)
_EPOCH = dt.date(1970, 1, 1)


def day_number(day: dt.date) -> int:
    """`day0` of a table whose column 0 is `day`: days since 1970-01-01."""
    return (day - _EPOCH).days


def first_sales(quantity: np.ndarray) -> np.ndarray:
    """int64 [n_items]: each item's first column with units sold (n_days if never); an item is
    forecast by the model from `MIN_HISTORY_DAYS` after it, by a profile before (export's
    training rows and the server's fallback rule read the same values)."""
    sold = quantity > 0
    return np.where(sold.any(1), sold.argmax(1), quantity.shape[1]).astype(np.int64)


@njit(cache=True, nogil=True)
def _civil(days):  # type: ignore[no-untyped-def]
    """(year, month, day) of a day count since 1970-01-01 (Howard Hinnant's civil_from_days)."""
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


@njit(cache=True, nogil=True)
def _christmas_of(y):  # type: ignore[no-untyped-def]
    """25 December of year y as a day count (days_from_civil, December is month index 9)."""
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * 9 + 2) // 5 + 25 - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


@njit(cache=True, nogil=True)
def _days_to_christmas(days):  # type: ignore[no-untyped-def]
    """Days from `days` to the next 25 December (0 on the day)."""
    y, _, _ = _civil(days)
    xmas = _christmas_of(y)
    return xmas - days if xmas >= days else _christmas_of(y + 1) - days


@njit(cache=True, nogil=True)
def _weekday(days):  # type: ignore[no-untyped-def]
    return (days + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0


@njit(cache=True, nogil=True)
def _value(q, i, d):  # type: ignore[no-untyped-def]
    return q[i, d] if d >= 0 else 0.0


@njit(cache=True, nogil=True)
def _origin_row(q, price, day0, i, o, out):  # type: ignore[no-untyped-def]
    """One origin's features into out float32 [N_ORIGIN]; returns the item's scale."""
    s56 = 0.0
    for k in range(56):
        s56 += _value(q, i, o - k)
    scale = max(s56 / 56.0, MIN_SCALE)
    for k in range(LAGS):
        out[k] = _value(q, i, o - k) / scale
    j = LAGS
    for w in _WINDOWS:
        s = 0.0
        for k in range(w):
            s += _value(q, i, o - k)
        out[j] = s / w / scale
        j += 1
    m28 = out[LAGS + 2] * scale
    v = 0.0
    for k in range(28):
        v += (_value(q, i, o - k) - m28) ** 2
    out[j] = np.sqrt(v / 28.0) / scale
    for w in (28, 112):
        n = 0
        for k in range(w):
            if _value(q, i, o - k) > 0:
                n += 1
        out[j + 1] = n / w
        j += 1
    last, first = -1, -1
    for d in range(o, -1, -1):
        if q[i, d] > 0:
            if last < 0:
                last = d
            first = d
    out[j + 1] = np.log1p(o - last if last >= 0 else 365.0)
    out[j + 2] = np.log1p(o - first if first >= 0 else 0.0)
    out[j + 3] = np.log(scale)
    p = price[i, o] if o >= 0 else 0.0
    p28 = price[i, o - 28] if o >= 28 else 0.0
    out[j + 4] = np.log1p(p)
    out[j + 5] = p / p28 - 1.0 if p28 > 0 and p > 0 else 0.0
    j += 6
    day = day0 + o
    wd = _weekday(day)
    for d in range(7):
        out[j + d] = 1.0 if d == wd else 0.0
    j += 7
    _, m, dom = _civil(day)
    out[j] = dom / 31.0
    out[j + 1] = np.sin(2 * np.pi * m / 12.0)
    out[j + 2] = np.cos(2 * np.pi * m / 12.0)
    dtc = _days_to_christmas(day)
    out[j + 3] = dtc / 365.0
    out[j + 4] = min(dtc, 60) / 60.0
    return scale


@njit(cache=True, nogil=True)
def _origin_rows(q, price, day0, rows, origins, out, out_scale):  # type: ignore[no-untyped-def]
    for r in range(rows.shape[0]):
        out_scale[r] = _origin_row(q, price, day0, rows[r], origins[r], out[r])


@njit(cache=True, nogil=True)
def _target_rows(q, day0, rows, origins, ahead, scale, out):  # type: ignore[no-untyped-def]
    for r in range(rows.shape[0]):
        i, o, h = rows[r], origins[r], ahead[r]
        t = o + h
        out[r, 0] = h / 28.0
        wd = _weekday(day0 + t)
        for d in range(7):
            out[r, 1 + d] = 1.0 if d == wd else 0.0
        out[r, 8] = min(_days_to_christmas(day0 + t), 60) / 60.0
        _, _, dom = _civil(day0 + t)
        out[r, 9] = dom / 31.0
        back = t - 7 * ((h + 6) // 7)  # the same weekday, on or before the origin
        out[r, 10] = _value(q, i, back) / scale[r]
        s = 0.0
        for k in range(4):
            s += _value(q, i, back - 7 * k)
        out[r, 11] = s / 4.0 / scale[r]


def _checked(q: np.ndarray, rows: np.ndarray, origins: np.ndarray) -> tuple[np.ndarray, ...]:
    rows = np.ascontiguousarray(rows, np.int64)
    origins = np.ascontiguousarray(origins, np.int64)
    if rows.shape != origins.shape or rows.ndim != 1:
        raise ValueError("rows, origins: expected int arrays of one shape [n]")
    if len(rows) and (rows.min() < 0 or rows.max() >= q.shape[0]):
        raise ValueError(f"rows: item rows must be in [0, {q.shape[0]})")
    if len(origins) and (origins.min() < 0 or origins.max() >= q.shape[1]):
        raise ValueError(f"origins: day columns must be in [0, {q.shape[1]})")
    return rows, origins


def origin_features(
    quantity: np.ndarray, price: np.ndarray, day0: int, rows: np.ndarray, origins: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 [n, len(ORIGIN_FEATURES)], scale float32 [n]) of items `rows` int64
    [n] at origin columns `origins` int64 [n], from table columns <= each origin only."""
    if quantity.shape != price.shape or quantity.ndim != 2:
        raise ValueError("quantity, price: expected float32 [n_items, n_days] of one shape")
    rows, origins = _checked(quantity, rows, origins)
    out = np.empty((len(rows), _N_ORIGIN), np.float32)
    scale = np.empty(len(rows), np.float32)
    _origin_rows(quantity, price, np.int64(day0), rows, origins, out, scale)
    return out, scale


def target_features(
    quantity: np.ndarray,
    day0: int,
    rows: np.ndarray,
    origins: np.ndarray,
    ahead: np.ndarray,
    scale: np.ndarray,
) -> np.ndarray:
    """float32 [n, len(TARGET_FEATURES)]: the target day `origin + ahead` (ahead int64 [n], >= 1)
    of each row; its history values come from columns <= the origin only."""
    rows, origins = _checked(quantity, rows, origins)
    ahead = np.ascontiguousarray(ahead, np.int64)
    if ahead.shape != rows.shape or (len(ahead) and ahead.min() < 1):
        raise ValueError("ahead: expected int [n], every value >= 1")
    out = np.empty((len(rows), _N_TARGET), np.float32)
    _target_rows(quantity, np.int64(day0), rows, origins, ahead, np.asarray(scale, np.float32), out)
    return out
