"""Cancellation risk on Online Retail: the label of each purchase line, the order history known
before it, and the split by time.

Label: a purchase line is cancelled when a later cancellation line (InvoiceNo `C...`) of the same
customer and StockCode, at most `WINDOW_DAYS` after it, cancels at least part of its quantity.
Each cancellation line is matched to the most recent earlier purchase of that customer and product
that no earlier cancellation took; if that purchase is older than the window, the cancellation
matches nothing (an older purchase is older still). "Earlier" orders lines by (InvoiceDate,
invoice number): the shop numbers purchases and cancellations in one sequence. Purchases in the
last `WINDOW_DAYS` of the data are left out: their label is not known yet.

Features: `server.contract.order_history.order_line_features` over tables built from the whole
data set, asked about each line's own invoice time (strictly before it), which is exactly what
the `score_cancellation` pipeline asks about a live order line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from server.contract.order_history import (
    FEATURES,
    EventTable,
    OrderHistory,
    order_line_features,
    pair_rows,
    time_categories,
)

__all__ = [
    "CATEGORICAL",
    "SPLIT_DATES",
    "WINDOW_DAYS",
    "MatchReport",
    "build_history",
    "feature_frame",
    "label_cancellations",
    "labelled_lines",
    "seconds_of",
    "split_by_time",
]

WINDOW_DAYS = 90
# train: lines before the first date; validation: until the second; test: the rest (labelled)
SPLIT_DATES = ("2011-05-01", "2011-07-01")
CATEGORICAL = ["country", "hour", "weekday", "month"]


@dataclass
class MatchReport:
    """What became of the cancellation lines (products, known customers)."""

    cancellation_lines: int = 0
    matched: int = 0
    no_earlier_purchase: int = 0  # the customer never bought the product before (in the data)
    earlier_purchases_all_taken: int = 0  # every earlier purchase was matched already
    older_than_window: int = 0  # the most recent free purchase is more than WINDOW_DAYS older

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def seconds_of(times: pd.Series) -> np.ndarray:
    """Naive timestamps -> int64 seconds since 1970 (the order history's clock)."""
    return times.to_numpy().astype("datetime64[s]").astype(np.int64)


def _invoice_number(invoice: pd.Series) -> np.ndarray:
    """536365 of "536365" and "C536365" (parsed once per distinct invoice)."""
    codes, uniques = pd.factorize(invoice)
    digits = pd.Series(uniques).str.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return pd.to_numeric(digits).to_numpy(np.int64)[codes]


def _order_key(lines: pd.DataFrame) -> np.ndarray:
    """int64 (InvoiceDate seconds, invoice number): the order of purchases and cancellations."""
    return seconds_of(lines["InvoiceDate"]) * 10_000_000 + _invoice_number(lines["InvoiceNo"])


def _pair_codes(purchases: pd.DataFrame, cancels: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """One int64 code per (customer, product), shared by the two frames."""
    both = pd.concat([purchases[["CustomerID", "StockCode"]], cancels[["CustomerID", "StockCode"]]])
    codes = both.groupby(["CustomerID", "StockCode"], sort=False).ngroup().to_numpy(np.int64)
    return codes[: len(purchases)], codes[len(purchases) :]


def label_cancellations(
    purchases: pd.DataFrame, cancels: pd.DataFrame, window_days: int = WINDOW_DAYS
) -> tuple[np.ndarray, np.ndarray, MatchReport]:
    """(cancelled bool per purchase row, the purchase row each cancellation row matched or -1,
    the report). Both frames need CustomerID, StockCode, InvoiceNo, InvoiceDate."""
    p_pair, c_pair = _pair_codes(purchases, cancels)
    p_key, p_time = _order_key(purchases), seconds_of(purchases["InvoiceDate"])
    order = np.lexsort((p_key, p_pair))  # each (customer, product): its purchases in order
    sp, sk = p_pair[order], p_key[order]
    start = np.searchsorted(sp, c_pair, "left")  # the cancellation's pair in the sorted purchases
    end = np.searchsorted(sp, c_pair, "right")
    c_key, c_time = _order_key(cancels), seconds_of(cancels["InvoiceDate"])
    cancelled = np.zeros(len(purchases), bool)
    matched = np.full(len(cancels), -1, np.int64)
    rep = MatchReport(cancellation_lines=len(cancels))
    window_s = window_days * 86_400
    for j in np.argsort(c_key, kind="stable"):  # cancellations in order: earlier ones take first
        a = start[j]
        k = a + int(np.searchsorted(sk[a : end[j]], c_key[j], "left"))  # purchases before it
        free = next((int(order[i]) for i in range(k - 1, a - 1, -1) if not cancelled[order[i]]), -1)
        if k == a:
            rep.no_earlier_purchase += 1
        elif free < 0:
            rep.earlier_purchases_all_taken += 1
        elif c_time[j] - p_time[free] > window_s:
            rep.older_than_window += 1
        else:
            cancelled[free] = True
            matched[j] = free
            rep.matched += 1
    return cancelled, matched, rep


@dataclass(frozen=True)
class _Ids:
    """Customer ids and stock codes as the history stores them (ascending strings), and the
    history row of every line of a frame."""

    customers: np.ndarray
    products: np.ndarray

    @classmethod
    def of(cls, *frames: pd.DataFrame) -> _Ids:
        customers = np.unique(np.concatenate([f["CustomerID"].unique() for f in frames]))
        return cls(
            np.sort(customers.astype(str)),
            np.unique(np.concatenate([f["StockCode"].unique() for f in frames]).astype(str)),
        )

    def rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(customer rows, product rows) of `frame`, -1 for an unknown id or code."""
        return _lookup(self.customers, frame["CustomerID"]), _lookup(
            self.products, frame["StockCode"]
        )


def _lookup(known: np.ndarray, values: pd.Series) -> np.ndarray:
    codes, uniques = pd.factorize(values)
    rows = np.searchsorted(known, uniques.astype(str))
    rows = np.where(known[np.minimum(rows, len(known) - 1)] == uniques.astype(str), rows, -1)
    return rows[codes].astype(np.int64)


def build_history(
    purchases: pd.DataFrame, cancels: pd.DataFrame, matched: np.ndarray
) -> OrderHistory:
    """The order history of every purchase and every matched cancellation in the frames."""
    m = cancels[matched >= 0]
    ids = _Ids.of(purchases)
    cust, prod = ids.rows(purchases)
    m_cust, m_prod = ids.rows(m)  # a matched cancellation has a purchase: its ids are known
    secs, m_secs = seconds_of(purchases["InvoiceDate"]), seconds_of(m["InvoiceDate"])
    spend = (purchases["Quantity"] * purchases["UnitPrice"]).to_numpy(np.float64)
    first_of_invoice = ~purchases["InvoiceNo"].duplicated().to_numpy()
    orders = np.stack([first_of_invoice, np.ones(len(purchases)), spend], axis=1)
    unit = purchases["UnitPrice"].to_numpy(np.float64)
    ones = np.ones((len(m), 1))
    n_c, n_p = len(ids.customers), len(ids.products)
    pair_keys = np.unique(cust * n_p + prod)
    pair, m_pair = (pair_rows(pair_keys, n_p, c, p) for c, p in ((cust, prod), (m_cust, m_prod)))
    return OrderHistory(
        customer_ids=ids.customers,
        stock_codes=ids.products,
        pair_keys=pair_keys,
        customer_orders=EventTable.build(cust, secs, orders, n_c),
        customer_cancels=EventTable.build(m_cust, m_secs, ones, n_c),
        product_orders=EventTable.build(prod, secs, np.stack([np.ones_like(unit), unit], 1), n_p),
        product_cancels=EventTable.build(m_prod, m_secs, ones, n_p),
        pair_orders=EventTable.build(pair, secs, np.ones((len(pair), 1)), len(pair_keys)),
        pair_cancels=EventTable.build(m_pair, m_secs, ones, len(pair_keys)),
    )


def feature_frame(history: OrderHistory, lines: pd.DataFrame) -> pd.DataFrame:
    """FEATURES (numeric, raw) and CATEGORICAL (strings) of `lines`, each from what the history
    held strictly before the line's own InvoiceDate."""
    secs = seconds_of(lines["InvoiceDate"])
    ids = _Ids(history.customer_ids, history.stock_codes)
    num = order_line_features(
        history,
        *ids.rows(lines),
        secs,
        lines["Quantity"].to_numpy(np.float64),
        lines["UnitPrice"].to_numpy(np.float64),
    )
    out = pd.DataFrame(num, columns=FEATURES, index=lines.index)
    out["country"] = lines["Country"].astype(str).to_numpy()
    for name, values in time_categories(secs).items():
        out[name] = values
    return out


def labelled_lines(
    purchases: pd.DataFrame, cancelled: np.ndarray, data_end: pd.Timestamp
) -> pd.DataFrame:
    """The purchases whose label is known (at least WINDOW_DAYS before `data_end`), with `y`."""
    known = (purchases["InvoiceDate"] <= data_end - pd.Timedelta(days=WINDOW_DAYS)).to_numpy()
    return purchases[known].assign(y=cancelled[known].astype(np.int64))


def split_by_time(
    lines: pd.DataFrame, dates: tuple[str, str] = SPLIT_DATES
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, valid, test) by InvoiceDate: before dates[0], before dates[1], the rest."""
    t = lines["InvoiceDate"]
    a, b = pd.Timestamp(dates[0]), pd.Timestamp(dates[1])
    return lines[t < a], lines[(t >= a) & (t < b)], lines[t >= b]
