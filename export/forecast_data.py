"""The demand-forecast data: Online Retail as a per-item daily table, its quirks, and its windows.

- Quantity: each product's (StockCode's) purchased units per calendar day (`export.data.
  load_retail`: real purchases by known customers), minus the units of every cancellation line
  matched to a purchase by `label_cancellations` (the cancellation model's rule), on the day the
  cancellation was made (so a day's value never depends on a later day), floored at 0.
- Price: the last unit price paid on or before each day (the median of a day's lines), 0 before
  an item's first sale.
- The partial last day (2011-12-09, trading stopped at 12:50) is dropped: the table ends on the
  last full day. Saturdays (the shop never trades) and the Christmas closure (24 Dec - 3 Jan) are
  closed days: every forecast is 0 there and metrics count them as the zeros they are.
- Windows: a window of 28 days starting at column `start` is evaluated from the origin
  `start - 1` (the model sees columns < start); its validation window is the 28 days before it;
  training targets end before the validation window (choices) or before the window (the model
  the card evaluates).
- Categories (the fallback's profiles): the last word of the item's description (MUG, HOLDER,
  BAG ...), a cheap product-type rule (the ranker's MiniLM clusters cost a minute at full tier);
  words with fewer than `MIN_CATEGORY_ITEMS` items share the category OTHER.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from export.cancellation_data import label_cancellations
from export.data import load_retail, load_retail_cancellations, read_retail
from kernels.history import day_number, first_sales

__all__ = [
    "CLOSED_MONTH_DAYS",
    "CLOSED_WEEKDAYS",
    "HORIZON",
    "MIN_CATEGORY_ITEMS",
    "MIN_HISTORY_DAYS",
    "DemandTable",
    "closed_mask",
    "load_demand",
]

HORIZON = 28
MIN_HISTORY_DAYS = 28  # an item first sold fewer days before the origin gets a profile
MIN_CATEGORY_ITEMS = 10
CLOSED_WEEKDAYS = (5,)  # Saturday (Monday is 0)
CLOSED_MONTH_DAYS = tuple([f"12-{d}" for d in range(24, 32)] + ["01-01", "01-02", "01-03"])


@dataclass
class DemandTable:
    quantity: np.ndarray  # float32 [n_items, n_days], net units per calendar day
    price: np.ndarray  # float32 [n_items, n_days], last known unit price (0 before a first sale)
    item_ids: list[str]
    titles: list[str]
    category: np.ndarray  # int64 [n_items]
    categories: list[str]
    first_day: dt.date  # column 0
    report: dict  # what was dropped, netted and closed

    @property
    def closed(self) -> np.ndarray:
        """bool [n_days + HORIZON]: closed days of the table and of the forecasts after it."""
        return closed_mask(self.first_day, self.n_days + HORIZON)

    @property
    def n_days(self) -> int:
        return self.quantity.shape[1]

    @property
    def day0(self) -> int:
        return day_number(self.first_day)

    def date(self, col: int) -> dt.date:
        return self.first_day + dt.timedelta(days=int(col))

    def column(self, date: str | dt.date) -> int:
        d = dt.date.fromisoformat(date) if isinstance(date, str) else date
        return (d - self.first_day).days

    def first_sale(self) -> np.ndarray:
        """int64 [n_items]: each item's first column with units sold (n_days if never)."""
        return first_sales(self.quantity)

    def subset(self, rows: np.ndarray) -> DemandTable:
        cats, inv = np.unique(self.category[rows], return_inverse=True)
        return DemandTable(
            np.ascontiguousarray(self.quantity[rows]),
            np.ascontiguousarray(self.price[rows]),
            [self.item_ids[r] for r in rows],
            [self.titles[r] for r in rows],
            inv.astype(np.int64),
            [self.categories[c] for c in cats],
            self.first_day,
            {**self.report, "items_kept": len(rows)},
        )


def closed_mask(first_day: dt.date, n: int) -> np.ndarray:
    """bool [n]: Saturdays and the Christmas closure from `first_day` on."""
    days = [first_day + dt.timedelta(days=k) for k in range(n)]
    md = set(CLOSED_MONTH_DAYS)
    return np.array(
        [d.weekday() in CLOSED_WEEKDAYS or d.strftime("%m-%d") in md for d in days], bool
    )


def _category_of(title: str) -> str:
    words = re.findall(r"[A-Z]{3,}", title.upper())
    return words[-1] if words else "OTHER"


def _categories(titles: list[str]) -> tuple[np.ndarray, list[str]]:
    raw = pd.Series([_category_of(t) for t in titles])
    counts = raw.value_counts()
    keep = raw.where(raw.map(counts) >= MIN_CATEGORY_ITEMS, "OTHER")
    names = sorted(keep.unique())
    return keep.map({n: i for i, n in enumerate(names)}).to_numpy(np.int64), names


def _cancelled_units(p: pd.DataFrame, c: pd.DataFrame, matched: np.ndarray) -> pd.DataFrame:
    """Matched cancellation lines: (StockCode, day, units), units capped at the purchase's."""
    m = c[matched >= 0]
    bought = p["Quantity"].to_numpy()[matched[matched >= 0]]
    units = np.minimum(-m["Quantity"].to_numpy(), bought)
    return pd.DataFrame(
        {"StockCode": m["StockCode"].to_numpy(), "day": m["InvoiceDate"].dt.normalize(), "u": units}
    )


def load_demand() -> DemandTable:
    """The daily table of every product sold by a known customer (see the module docstring)."""
    raw = read_retail()
    p, p_rep = load_retail(raw)
    c, c_rep = load_retail_cancellations(raw)
    _, matched, match = label_cancellations(p, c)
    last = p["InvoiceDate"].max().normalize()
    partial = {"date": str(last.date()), "lines": int((p["InvoiceDate"] >= last).sum())}
    partial["last_time"] = str(p["InvoiceDate"].max().time())
    cancel = _cancelled_units(p, c, matched)
    keep_c = (cancel["day"] < last).to_numpy()
    p = p[p["InvoiceDate"] < last]
    cancel = cancel[keep_c]
    first = p["InvoiceDate"].min().normalize()
    days = pd.date_range(first, last - pd.Timedelta(days=1))
    items = p.groupby("StockCode")["Description"].agg(
        lambda s: s.mode().iat[0] if s.notna().any() else ""
    )
    ids = items.index.to_numpy(str)
    row = {s: i for i, s in enumerate(ids)}
    p_day = p["InvoiceDate"].dt.normalize()
    col = ((p_day - first).dt.days).to_numpy()
    q = np.zeros((len(ids), len(days)), np.float64)
    np.add.at(q, (p["StockCode"].map(row).to_numpy(), col), p["Quantity"].to_numpy())
    gross = float(q.sum())
    c_rows = cancel["StockCode"].map(row).to_numpy()
    c_col = (cancel["day"] - first).dt.days.to_numpy()
    np.add.at(q, (c_rows, c_col), -cancel["u"].to_numpy())
    floored = float(-q[q < 0].sum())
    q = np.maximum(q, 0)
    daily_price = (
        p.assign(r=p["StockCode"].map(row), d=col).groupby(["r", "d"])["UnitPrice"].median()
    )
    price = np.full((len(ids), len(days)), np.nan)
    idx = daily_price.index
    price[idx.get_level_values(0), idx.get_level_values(1)] = daily_price.to_numpy()
    price = pd.DataFrame(price.T).ffill().fillna(0.0).to_numpy().T
    closed = closed_mask(first.date(), len(days))
    cat, names = _categories(list(items.to_numpy(str)))
    report = {
        "cleaning": [p_rep.to_dict(), c_rep.to_dict()],
        "cancellation_matching": match.to_dict(),
        "partial_last_day_dropped": partial,
        "units_bought": gross,
        "units_cancelled_netted": float(cancel["u"].sum()),
        "units_floored_at_zero": floored,
        "closed_days": int(closed.sum()),
        "trading_days_without_sales": int(((q.sum(0) == 0) & ~closed).sum()),
        "items": len(ids),
        "days": len(days),
    }
    return DemandTable(
        q.astype(np.float32),
        price.astype(np.float32),
        list(ids),
        list(items.to_numpy(str)),
        cat,
        names,
        first.date(),
        report,
    )
