"""Order history for cancellation risk: per-customer and per-product event tables, asked "what
was known strictly before this time".

Export builds the tables once from the whole data set and computes every training line's
features by asking them about the line's own invoice time; the `score_cancellation` pipeline asks
the same tables (`order_history.npz` in its version folder) about a live order line. One reader
and one feature function serve both, so training and serving features cannot drift apart, and a
feature never sees the line itself or anything after it.

Times are whole seconds since 1970-01-01 of the shop's naive local time (the data set's own
clock, no time zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "FEATURES",
    "LOG1P",
    "NO_HISTORY_DAYS",
    "EventTable",
    "OrderHistory",
    "order_line_features",
    "pair_rows",
    "time_categories",
]

SHIFT = 34  # key = entity << 34 | seconds: seconds since 1970 fit in 34 bits until the year 2514
MASK = (1 << SHIFT) - 1
DAY_S = 86_400.0
NO_HISTORY_DAYS = 365.0  # "days since the last order" of a customer without one: long ago

# the numeric features of an order line, in the model's order; LOG1P are heavy-tailed counts
FEATURES = [
    "quantity",
    "unit_price",
    "line_value",
    "customer_invoices",
    "customer_lines",
    "customer_spend",
    "customer_cancelled",
    "customer_cancel_rate",
    "customer_days_since_last",
    "customer_days_since_first",
    "product_lines",
    "product_cancelled",
    "product_cancel_rate",
    "product_mean_price",
    "price_vs_product",
    "customer_product_lines",
    "customer_product_days_since_last",
    "customer_product_cancelled",
]
LOG1P = [
    "quantity",
    "unit_price",
    "line_value",
    "customer_invoices",
    "customer_lines",
    "customer_spend",
    "customer_cancelled",
    "customer_days_since_last",
    "customer_days_since_first",
    "product_lines",
    "product_cancelled",
    "product_mean_price",
    "customer_product_lines",
    "customer_product_days_since_last",
    "customer_product_cancelled",
]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@dataclass(frozen=True)
class Before:
    """What each queried entity had strictly before its time: `count` events, their summed
    `values` [n, k], and the first and last event time (-1 when there is none)."""

    count: np.ndarray  # int64 [n]
    values: np.ndarray  # float64 [n, k]
    first_s: np.ndarray  # int64 [n]
    last_s: np.ndarray  # int64 [n]


@dataclass(frozen=True)
class EventTable:
    """Time-ordered events of `n` entities, events at the same second merged (summed).

    indptr: int64 [n + 1]; entity e's events are keys[indptr[e]:indptr[e + 1]]
    keys: int64 [events]; e << SHIFT | seconds, ascending and unique
    cum: float64 [events + 1, k]; cum[j] is the sum of the values of events 0..j-1 (cum[0] = 0)
    """

    indptr: np.ndarray
    keys: np.ndarray
    cum: np.ndarray

    @classmethod
    def build(
        cls, entity: np.ndarray, seconds: np.ndarray, values: np.ndarray, n: int
    ) -> EventTable:
        """entity int64 [m] in 0..n-1, seconds int64 [m] >= 0, values float [m, k]."""
        seconds = np.asarray(seconds, np.int64)
        if len(seconds) and (seconds.min() < 0 or seconds.max() > MASK):
            raise ValueError("event times must be seconds since 1970 before the year 2514")
        keys = (np.asarray(entity, np.int64) << SHIFT) | seconds
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        values = np.asarray(values, np.float64)
        values = (values[:, None] if values.ndim == 1 else values)[order]
        starts = np.flatnonzero(np.diff(keys, prepend=-1) != 0)  # the first event of each key
        summed = np.add.reduceat(values, starts, axis=0) if len(keys) else values
        cum = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(summed, axis=0)])
        uniq = keys[starts]
        indptr = np.searchsorted(uniq, np.arange(n + 1, dtype=np.int64) << SHIFT)
        return cls(indptr.astype(np.int64), uniq, cum)

    def before(self, entity: np.ndarray, seconds: np.ndarray) -> Before:
        """entity int64 [q] (-1: unknown, no events), seconds int64 [q]."""
        entity = np.asarray(entity, np.int64)
        known = entity >= 0
        e = np.where(known, entity, 0)
        start = self.indptr[e]
        idx = np.searchsorted(self.keys, (e << SHIFT) | np.asarray(seconds, np.int64), "left")
        idx = np.where(known, idx, start)
        count = idx - start
        values = self.cum[idx] - self.cum[start]
        has = count > 0
        keys = self.keys if len(self.keys) else np.zeros(1, np.int64)  # indexable when empty
        first = np.where(has, keys[np.minimum(start, len(keys) - 1)] & MASK, -1)
        last = np.where(has, keys[np.maximum(idx - 1, 0)] & MASK, -1)
        return Before(count, values, first, last)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}.indptr": self.indptr,
            f"{prefix}.keys": self.keys,
            f"{prefix}.cum": self.cum,
        }

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> EventTable:
        table = cls(*(np.asarray(arrays[f"{prefix}.{k}"]) for k in ("indptr", "keys", "cum")))
        if len(table.cum) != len(table.keys) + 1 or table.indptr[-1] != len(table.keys):
            raise ValueError(f"{prefix}: indptr, keys and cum disagree in length")
        return table


TABLES = (
    "customer_orders",
    "customer_cancels",
    "product_orders",
    "product_cancels",
    "pair_orders",
    "pair_cancels",
)


@dataclass(frozen=True)
class OrderHistory:
    """Everything the shop knew about its customers and products, as event tables.

    customer_orders: one event per invoice, values (invoices, lines, spend)
    customer_cancels / product_cancels: one event per cancellation line matched to a purchase,
        at the cancellation's time, value (cancelled lines,)
    product_orders: one event per purchase line, values (lines, unit price)
    pair_orders / pair_cancels: the same per (customer, product) pair, value (lines,)
    """

    customer_ids: np.ndarray  # str [n_customers], ascending
    stock_codes: np.ndarray  # str [n_products], ascending
    pair_keys: np.ndarray  # int64 [n_pairs], ascending: customer row * n_products + product row
    customer_orders: EventTable
    customer_cancels: EventTable
    product_orders: EventTable
    product_cancels: EventTable
    pair_orders: EventTable
    pair_cancels: EventTable

    def customer_rows(self, ids) -> np.ndarray:
        """int64 row per id, -1 for None or an id the history does not know."""
        return _rows(self.customer_ids, ids)

    def product_rows(self, codes) -> np.ndarray:
        return _rows(self.stock_codes, codes)

    def pair_rows(self, customer: np.ndarray, product: np.ndarray) -> np.ndarray:
        """int64 row of each (customer row, product row) pair, -1 when the pair never ordered."""
        return pair_rows(self.pair_keys, len(self.stock_codes), customer, product)

    def save(self, path: Path) -> None:
        arrays = {
            "customer_ids": self.customer_ids,
            "stock_codes": self.stock_codes,
            "pair_keys": self.pair_keys,
        }
        for name in TABLES:
            arrays.update(getattr(self, name).arrays(name))
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]  # sorted keys compress well

    @classmethod
    def load(cls, path: Path) -> OrderHistory:
        """Raises OSError or ValueError (naming the array) for a missing or broken file."""
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        try:
            t = {name: EventTable.from_arrays(arrays, name) for name in TABLES}
            return cls(
                arrays["customer_ids"],
                arrays["stock_codes"],
                arrays["pair_keys"],
                t["customer_orders"],
                t["customer_cancels"],
                t["product_orders"],
                t["product_cancels"],
                t["pair_orders"],
                t["pair_cancels"],
            )
        except KeyError as exc:
            raise ValueError(f"{path.name}: missing array {exc}") from None


def _rows(known: np.ndarray, ids) -> np.ndarray:
    q = np.asarray(["" if i is None else str(i) for i in ids], dtype=known.dtype)
    pos = np.minimum(np.searchsorted(known, q), max(len(known) - 1, 0))
    hit = (len(known) > 0) & (known[pos] == q) if len(known) else np.zeros(len(q), bool)
    return np.where(hit, pos, -1).astype(np.int64)


def pair_rows(
    keys: np.ndarray, n_products: int, customer: np.ndarray, product: np.ndarray
) -> np.ndarray:
    """Rows of (customer, product) pairs in `keys` (ascending customer * n_products + product),
    -1 where either is unknown or the pair is not in `keys`."""
    customer, product = np.asarray(customer, np.int64), np.asarray(product, np.int64)
    q = customer * n_products + product
    pos = np.minimum(np.searchsorted(keys, q), max(len(keys) - 1, 0))
    hit = (customer >= 0) & (product >= 0) & (keys[pos] == q if len(keys) else False)
    return np.where(hit, pos, -1).astype(np.int64)


def order_line_features(
    history: OrderHistory,
    customer: np.ndarray,
    product: np.ndarray,
    seconds: np.ndarray,
    quantity: np.ndarray,
    unit_price: np.ndarray,
) -> np.ndarray:
    """float64 [n, len(FEATURES)]: the raw numeric features of n order lines (customer and
    product rows from `customer_rows`/`product_rows`, -1 unknown), from events strictly before
    each line's `seconds`: a new or unknown customer and a new product have no history."""
    q = np.asarray(quantity, np.float64)
    p = np.asarray(unit_price, np.float64)
    co = history.customer_orders.before(customer, seconds)
    cc = history.customer_cancels.before(customer, seconds)
    po = history.product_orders.before(product, seconds)
    pc = history.product_cancels.before(product, seconds)
    pair = history.pair_rows(customer, product)
    qo = history.pair_orders.before(pair, seconds)
    qc = history.pair_cancels.before(pair, seconds)
    now = np.asarray(seconds, np.float64)
    c_lines, p_lines = co.values[:, 1], po.values[:, 0]
    c_cancelled, p_cancelled = cc.values[:, 0], pc.values[:, 0]
    p_mean = np.where(p_lines > 0, po.values[:, 1] / np.maximum(p_lines, 1), p)
    cols = {
        "quantity": q,
        "unit_price": p,
        "line_value": q * p,
        "customer_invoices": co.values[:, 0],
        "customer_lines": c_lines,
        "customer_spend": co.values[:, 2],
        "customer_cancelled": c_cancelled,
        "customer_cancel_rate": c_cancelled / np.maximum(c_lines, 1),
        "customer_days_since_last": np.where(
            co.count > 0, (now - co.last_s) / DAY_S, NO_HISTORY_DAYS
        ),
        "customer_days_since_first": np.where(co.count > 0, (now - co.first_s) / DAY_S, 0.0),
        "product_lines": p_lines,
        "product_cancelled": p_cancelled,
        "product_cancel_rate": p_cancelled / np.maximum(p_lines, 1),
        "product_mean_price": p_mean,
        "price_vs_product": np.log(np.maximum(p, 1e-6) / np.maximum(p_mean, 1e-6)),
        "customer_product_lines": qo.values[:, 0],
        "customer_product_days_since_last": np.where(
            qo.count > 0, (now - qo.last_s) / DAY_S, NO_HISTORY_DAYS
        ),
        "customer_product_cancelled": qc.values[:, 0],
    }
    return np.stack([cols[f] for f in FEATURES], axis=1)


def time_categories(seconds: np.ndarray) -> dict[str, list[str]]:
    """hour ("0".."23"), weekday ("Mon".."Sun") and month ("1".."12") of each time."""
    t = np.asarray(seconds, np.int64).astype("datetime64[s]")
    days = t.astype("datetime64[D]")
    hour = ((t - days).astype(np.int64) // 3600).tolist()
    weekday = ((days.astype(np.int64) + 3) % 7).tolist()  # 1970-01-01 was a Thursday
    month = (t.astype("datetime64[M]").astype(np.int64) % 12 + 1).tolist()
    return {
        "hour": [str(h) for h in hour],
        "weekday": [WEEKDAYS[d] for d in weekday],
        "month": [str(m) for m in month],
    }
