"""The cancellation label on hand-made invoice lines, and the leakage rule of its features: a
line's features come from strictly earlier rows only, so altering or removing anything at or
after its time changes none of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from export.cancellation_data import (
    build_history,
    feature_frame,
    label_cancellations,
    labelled_lines,
    split_by_time,
)
from server.contract.order_history import FEATURES


def _lines(rows: list[tuple]) -> pd.DataFrame:
    """(invoice, customer, stock code, quantity, date) -> the frame load_retail* return."""
    df = pd.DataFrame(rows, columns=["InvoiceNo", "CustomerID", "StockCode", "Quantity", "when"])
    return df.assign(
        InvoiceDate=pd.to_datetime(df.pop("when")),
        UnitPrice=2.0,
        Country="United Kingdom",
        CustomerID=df["CustomerID"].astype(np.int64),
    )


def test_partial_cancellation_labels_the_most_recent_earlier_purchase():
    buys = _lines(
        [
            ("536001", 1, "A", 10, "2011-01-01 10:00"),
            ("536100", 1, "A", 10, "2011-01-10 10:00"),
            ("536101", 1, "B", 5, "2011-01-10 10:00"),  # another product
            ("536102", 2, "A", 5, "2011-01-10 10:00"),  # another customer
        ]
    )
    cancels = _lines([("C536200", 1, "A", -3, "2011-01-15 10:00")])  # 3 of 10: partial
    cancelled, matched, rep = label_cancellations(buys, cancels)
    assert cancelled.tolist() == [False, True, False, False]
    assert matched.tolist() == [1] and rep.matched == 1


def test_each_purchase_is_taken_once_then_the_next_earlier_one():
    buys = _lines(
        [
            ("536001", 1, "A", 10, "2011-01-01 10:00"),
            ("536100", 1, "A", 10, "2011-01-10 10:00"),
        ]
    )
    cancels = _lines(
        [
            ("C536200", 1, "A", -10, "2011-01-15 10:00"),
            ("C536201", 1, "A", -1, "2011-01-16 10:00"),
            ("C536202", 1, "A", -1, "2011-01-17 10:00"),  # nothing left
        ]
    )
    cancelled, matched, rep = label_cancellations(buys, cancels)
    assert cancelled.tolist() == [True, True]
    assert matched.tolist() == [1, 0, -1]
    assert rep.matched == 2 and rep.earlier_purchases_all_taken == 1


def test_the_90_day_window():
    buys = _lines(
        [
            ("536001", 1, "A", 10, "2011-01-01 10:00"),
            ("536002", 2, "A", 10, "2011-01-01 10:00"),
        ]
    )
    cancels = _lines(
        [
            ("C536300", 1, "A", -1, "2011-04-01 10:00"),  # 90 days later: inside
            ("C536301", 2, "A", -1, "2011-04-01 10:01"),  # 90 days and a minute: outside
        ]
    )
    cancelled, matched, rep = label_cancellations(buys, cancels)
    assert cancelled.tolist() == [True, False]
    assert rep.older_than_window == 1 and matched.tolist() == [0, -1]
    # an older purchase is never matched past a too-old most recent one
    two = _lines(
        [
            ("536001", 1, "A", 10, "2011-01-01 10:00"),
            ("536002", 1, "A", 10, "2011-01-02 10:00"),
        ]
    )
    late = _lines([("C536400", 1, "A", -1, "2011-06-01 10:00")])
    assert label_cancellations(two, late)[0].tolist() == [False, False]


def test_later_means_after_in_time_then_in_invoice_number():
    buys = _lines([("536500", 1, "A", 10, "2011-02-01 10:00")])
    cancels = _lines(
        [
            ("C536499", 1, "A", -1, "2011-02-01 10:00"),  # same minute, numbered before
            ("C536000", 1, "A", -1, "2011-01-31 10:00"),  # before the purchase
        ]
    )
    cancelled, _, rep = label_cancellations(buys, cancels)
    assert not cancelled.any() and rep.no_earlier_purchase == 2
    after = _lines([("C536501", 1, "A", -1, "2011-02-01 10:00")])  # same minute, after
    assert label_cancellations(buys, after)[0].tolist() == [True]


def test_the_last_90_days_are_left_out():
    buys = _lines(
        [
            ("536001", 1, "A", 1, "2011-09-10 12:00"),  # exactly 90 days before the end
            ("536002", 1, "A", 1, "2011-09-10 12:01"),
            ("536003", 1, "A", 1, "2011-12-01 12:00"),
        ]
    )
    kept = labelled_lines(buys, np.zeros(3, bool), pd.Timestamp("2011-12-09 12:00"))
    assert kept["InvoiceNo"].tolist() == ["536001"]


def test_split_by_time_is_by_invoice_date():
    buys = _lines(
        [(f"5360{i:02d}", 1, "A", 1, f"2011-{m:02d}-15 10:00") for i, m in enumerate(range(1, 10))]
    )
    train, valid, test = split_by_time(buys.assign(y=0), ("2011-05-01", "2011-07-01"))
    assert train["InvoiceDate"].max() < pd.Timestamp("2011-05-01") <= valid["InvoiceDate"].min()
    assert valid["InvoiceDate"].max() < pd.Timestamp("2011-07-01") <= test["InvoiceDate"].min()
    assert (len(train), len(valid), len(test)) == (4, 2, 3)


# -- features only from the past -----------------------------------------------------------------


def _random_shop(seed: int = 0, n: int = 1500) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2011-01-01")
    invoice_of = rng.integers(0, 400, n)  # lines grouped into 400 invoices
    inv_time = start + pd.to_timedelta(np.sort(rng.integers(0, 300 * 1440, 400)), unit="min")
    inv_cust = rng.integers(0, 40, 400)
    buys = pd.DataFrame(
        {
            "InvoiceNo": [str(600000 + i) for i in invoice_of],
            "CustomerID": inv_cust[invoice_of].astype(np.int64),
            "StockCode": [f"{20000 + c}" for c in rng.integers(0, 30, n)],
            "Quantity": rng.integers(1, 50, n),
            "InvoiceDate": inv_time[invoice_of],
            "UnitPrice": rng.uniform(0.5, 10, n).round(2),
            "Country": rng.choice(["United Kingdom", "France"], n),
        }
    )
    picked = buys.sample(120, random_state=seed)
    later = pd.to_timedelta(rng.integers(1, 120 * 1440, len(picked)), unit="min")
    cancels = picked.assign(
        InvoiceNo=[f"C{700000 + i}" for i in range(len(picked))],
        Quantity=-1,
        InvoiceDate=picked["InvoiceDate"].to_numpy() + later,
    )
    return buys.reset_index(drop=True), cancels.reset_index(drop=True)


def _features(buys: pd.DataFrame, cancels: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    _, matched, _ = label_cancellations(buys, cancels)
    return feature_frame(build_history(buys, cancels, matched), lines)


@pytest.mark.parametrize("cut", ["2011-04-01 00:00", "2011-07-15 12:00", "2011-09-01 00:00"])
def test_no_feature_changes_when_later_rows_change(cut):
    buys, cancels = _random_shop()
    t = pd.Timestamp(cut)
    # the lines of the first invoice at or after the cut: later rows are those after them
    first = buys.loc[buys["InvoiceDate"] >= t, "InvoiceDate"].min()
    lines = buys[buys["InvoiceDate"] <= first]
    want = _features(buys, cancels, lines)
    # remove everything at or after the lines' own time except the lines themselves ...
    keep = (buys["InvoiceDate"] < first) | buys.index.isin(lines.index)
    got_removed = _features(buys[keep], cancels[cancels["InvoiceDate"] < first], lines)
    # ... or alter it: quantities, prices, and the cancellations after it
    altered = buys.copy()
    later = altered["InvoiceDate"] > first
    altered.loc[later, "Quantity"] *= 7
    altered.loc[later, "UnitPrice"] += 3.0
    more = cancels.assign(InvoiceDate=cancels["InvoiceDate"] + pd.Timedelta(days=1))
    more = pd.concat([cancels[cancels["InvoiceDate"] < first], more[more["InvoiceDate"] > first]])
    got_altered = _features(altered, more, lines)
    pd.testing.assert_frame_equal(got_removed, want)
    pd.testing.assert_frame_equal(got_altered, want)
    # the lines' own invoice is not in their history: invoices strictly before it only
    at = lines[lines["InvoiceDate"] == first]
    before = buys[buys["InvoiceDate"] < first]
    for i, cust in at["CustomerID"].items():
        n = before.loc[before["CustomerID"] == cust, "InvoiceNo"].nunique()
        assert want.at[i, "customer_invoices"] == n


def test_a_cancellation_reaches_features_only_after_its_own_time():
    buys = _lines(
        [
            ("536001", 1, "A", 10, "2011-01-01 10:00"),
            ("536100", 1, "B", 10, "2011-01-20 10:00"),  # after the cancellation
            ("536050", 1, "B", 10, "2011-01-12 10:00"),  # before it
        ]
    )
    cancels = _lines([("C536060", 1, "A", -1, "2011-01-15 10:00")])
    f = _features(buys, cancels, buys)
    assert f["customer_cancelled"].tolist() == [0.0, 1.0, 0.0]
    assert f["customer_lines"].tolist() == [0.0, 2.0, 1.0]
    assert f["customer_cancel_rate"].tolist() == [0.0, 0.5, 0.0]
    assert set(f.columns) == set(FEATURES) | {"country", "hour", "weekday", "month"}
