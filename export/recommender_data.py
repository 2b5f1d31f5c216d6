"""The recommender's data and metrics: Online Retail purchase sequences, two splits.

Events: one per distinct (invoice, item) of a customer, time-ordered, a consecutive repeat of the
same item kept once (`export.data.retail_sequences`'s rules), each with its date, the unit price
paid and the invoice's country. Customers with >= 3 events.

- Leave-one-out (`RecData.loo`, the gate): per customer, the last event is the test target, the
  one before it the validation target, the rest is training.
- Global time (`RecData.time`, reported beside it): the last four weeks of the data are the test
  window. Every event in the window that has an earlier event of its customer is a test target,
  its history all of the customer's earlier events (window events included). Training: events before the window; the last
  one of each customer is the validation target. Leave-one-out's validation and test events are
  never in its training or validation (its models start the leave-one-out models, see
  `export.recommender`).

Metrics on the full catalogue, no sampled negatives, history items not removed (re-buying is
common here): HR@10 and NDCG@10.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from export.data import load_retail, retail_sequences

__all__ = [
    "TIME_TEST_DAYS",
    "RecData",
    "SeqSplit",
    "encode_histories",
    "load_rec_data",
    "popularity",
    "rank_metrics",
    "training_windows",
]

TIME_TEST_DAYS = 28  # the global-time split's test window: the last four weeks of the data


@dataclass
class SeqSplit:
    """Training sequences, validation and test queries (history -> next item)."""

    name: str
    train: list[np.ndarray]  # training sequences (training windows are cut from these)
    valid_hist: list[np.ndarray]
    valid_target: np.ndarray
    test_hist: list[np.ndarray]
    test_target: np.ndarray
    test_customer: np.ndarray  # row in `RecData.customers` of each test query
    about: dict  # what the test set is, exactly (the card's words)


@dataclass
class RecData:
    items: pd.DataFrame  # StockCode, Description, price (median of every line: display), count
    customers: np.ndarray  # CustomerID per sequence
    seqs: list[np.ndarray]  # every event per customer: item index, time order
    times: list[np.ndarray]  # datetime64[s] per event
    paid: list[np.ndarray]  # float32 unit price paid per event
    country: list[np.ndarray]  # int64 country index (into `country_names`) per event
    country_names: list[str]
    max_len: int
    rows: int
    cleaning: dict
    loo: SeqSplit
    time: SeqSplit

    @property
    def n_items(self) -> int:
        return len(self.items)

    def titles(self) -> list[str]:
        return self.items["Description"].fillna("").str.strip().tolist()


def _events(df: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """`retail_sequences`'s events with their date, paid price and country (same rules, order)."""
    lines = df.sort_values(["CustomerID", "InvoiceDate", "InvoiceNo"], kind="stable")
    lines = lines.drop_duplicates(["CustomerID", "InvoiceNo", "StockCode"])
    code_to_idx = {c: i for i, c in enumerate(items["StockCode"])}
    ev = pd.DataFrame(
        {
            "customer": lines["CustomerID"].to_numpy(),
            "item": lines["StockCode"].map(code_to_idx).to_numpy(np.int64),
            "time": lines["InvoiceDate"].to_numpy("datetime64[s]"),
            "paid": lines["UnitPrice"].to_numpy(np.float32),
            "country": lines["Country"].to_numpy(),
        }
    )
    same = (ev["customer"].to_numpy()[1:] == ev["customer"].to_numpy()[:-1]) & (
        ev["item"].to_numpy()[1:] == ev["item"].to_numpy()[:-1]
    )
    return ev[np.r_[True, ~same]].reset_index(drop=True)


def _split_by_customer(ev: pd.DataFrame, col: str) -> list[np.ndarray]:
    bounds = np.flatnonzero(np.diff(ev["customer"].to_numpy())) + 1
    return np.split(ev[col].to_numpy(), bounds)


def leave_one_out(seqs: list[np.ndarray], times: list[np.ndarray]) -> SeqSplit:
    last = [t[-1] for t in times]
    return SeqSplit(
        "leave-one-out",
        [s[:-2] for s in seqs],
        [s[:-2] for s in seqs],
        np.array([s[-2] for s in seqs], np.int64),
        [s[:-1] for s in seqs],
        np.array([s[-1] for s in seqs], np.int64),
        np.arange(len(seqs)),
        {
            "queries": len(seqs),
            "customers": len(seqs),
            "events": len(seqs),
            "what": "each customer's last event (history: every earlier event)",
            "dates": [str(min(last))[:10], str(max(last))[:10]],
        },
    )


def global_time(seqs: list[np.ndarray], times: list[np.ndarray], cut: np.datetime64) -> SeqSplit:
    """Test: the events at or after `cut` with an earlier event of the same customer. Train and
    validation: the events before `cut` that are not a leave-one-out validation or test event."""
    train, v_hist, v_target, t_hist, t_target, t_cust = [], [], [], [], [], []
    for c, (s, t) in enumerate(zip(seqs, times, strict=True)):
        before = int(np.searchsorted(t, cut))  # events before the window
        usable = min(before, len(s) - 2)  # leave-one-out's valid/test events stay unseen
        if usable >= 2:
            train.append(s[: usable - 1])
            v_hist.append(s[: usable - 1])
            v_target.append(s[usable - 1])
        for j in range(max(before, 1), len(s)):
            t_hist.append(s[:j])
            t_target.append(s[j])
            t_cust.append(c)
    t_cust = np.array(t_cust, np.int64)
    end = max(t[-1] for t in times)
    return SeqSplit(
        "global-time",
        train,
        v_hist,
        np.array(v_target, np.int64),
        t_hist,
        np.array(t_target, np.int64),
        t_cust,
        {
            "queries": len(t_target),
            "customers": len(np.unique(t_cust)),
            "events": len(t_target),
            "what": "every event in the last four weeks with an earlier event of its customer "
            "(history: all of the customer's earlier events, window events included)",
            "dates": [str(cut)[:10], str(end)[:10]],
        },
    )


def load_rec_data(quick: bool, seed: int, max_len: int | None = None) -> RecData:
    df, rep = load_retail()
    _, items, _ = retail_sequences(df)  # the item table (row = item index)
    ev = _events(df, items)
    names = sorted(ev["country"].unique())
    ev["country"] = ev["country"].map({c: i for i, c in enumerate(names)}).astype(np.int64)
    seqs, times = _split_by_customer(ev, "item"), _split_by_customer(ev, "time")
    paid, country = _split_by_customer(ev, "paid"), _split_by_customer(ev, "country")
    cust = ev["customer"].to_numpy()[np.r_[0, np.flatnonzero(np.diff(ev["customer"])) + 1]]
    keep = [i for i, s in enumerate(seqs) if len(s) >= 3]
    if quick:  # a fixed random subset of customers; the catalogue stays whole
        keep = sorted(np.random.default_rng(seed).choice(keep, size=500, replace=False).tolist())
    end = max(times[i][-1] for i in keep)
    cut = (end.astype("datetime64[D]") - np.timedelta64(TIME_TEST_DAYS - 1, "D")).astype(
        "datetime64[s]"
    )
    seqs, times = [seqs[i] for i in keep], [times[i] for i in keep]
    return RecData(
        items,
        cust[keep],
        seqs,
        times,
        [paid[i] for i in keep],
        [country[i] for i in keep],
        names,
        max_len or (20 if quick else 50),
        rep.rows_out,
        rep.to_dict(),
        leave_one_out(seqs, times),
        global_time(seqs, times, cut),
    )


def popularity(train: list[np.ndarray], n_items: int) -> np.ndarray:
    """Events per item in the training sequences only (the cold-start order)."""
    return np.bincount(np.concatenate(train), minlength=n_items).astype(np.float32)


def training_windows(
    train: list[np.ndarray], max_len: int, per_user: int = 2, loss_positions: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded training windows: tokens (item + 1, 0 pad) and next-item targets (-100 pad).

    At most `per_user` windows per customer, the most recent ones: recent behaviour is what the
    held-out targets follow, and a CPU epoch stays short. Only the last `loss_positions` targets
    of a window carry a loss (each still sees the whole window before it): the softmax over the
    full catalogue is most of the cost. The models train with a loss on every position (it
    learned ~3x faster per epoch than the last 20 at ~1.5x the step cost)."""
    xs, ys = [], []
    for s in train:
        end = len(s)
        while end >= 2:
            if (len(s) - end) >= per_user * max_len:
                break
            chunk = s[max(0, end - max_len - 1) : end]
            x = np.zeros(max_len, np.int64)
            y = np.full(max_len, -100, np.int64)
            x[: len(chunk) - 1] = chunk[:-1] + 1
            y[: len(chunk) - 1] = chunk[1:]
            y[: max(0, len(chunk) - 1 - loss_positions)] = -100
            xs.append(x)
            ys.append(y)
            end -= max_len
    return np.stack(xs), np.stack(ys)


def encode_histories(hists: list[np.ndarray], max_len: int, pad: int = -1) -> np.ndarray:
    """Last `max_len` items of each history, right-padded with `pad` (item indices)."""
    out = np.full((len(hists), max_len), pad, np.int64)
    for i, h in enumerate(hists):
        h = h[-max_len:]
        out[i, : len(h)] = h
    return out


def rank_metrics(scores: np.ndarray, target: np.ndarray, k: int = 10) -> dict[str, float]:
    """HR@k and NDCG@k of one target per row against every item (ties count against the target)."""
    t = scores[np.arange(len(scores)), target][:, None]
    rank = (scores > t).sum(1) + (scores == t).sum(1) - 1
    hit = rank < k
    return {
        "hr@10": round(float(hit.mean()), 4),
        "ndcg@10": round(float(np.where(hit, 1.0 / np.log2(rank + 2), 0.0).mean()), 4),
    }
