"""The recommender's data and metrics: Online Retail purchase sequences, leave-one-out.

Per customer, time-ordered; the last item is the test target, the one before it the validation
target, the rest is training (customers with >= 3 events). Metrics on the full catalogue, no
sampled negatives, history items not removed (re-buying is common here): HR@10 and NDCG@10.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.data import load_retail, retail_sequences

__all__ = [
    "RecData",
    "encode_histories",
    "load_rec_data",
    "popularity",
    "rank_metrics",
    "training_windows",
]


@dataclass
class RecData:
    items: object  # DataFrame: StockCode, Description, price, count
    customers: np.ndarray  # customer id per sequence
    train: list[np.ndarray]  # training prefix per customer
    valid_target: np.ndarray
    test_target: np.ndarray
    max_len: int
    rows: int
    cleaning: dict

    @property
    def n_items(self) -> int:
        return len(self.items)

    def valid_hist(self) -> list[np.ndarray]:
        return self.train

    def test_hist(self) -> list[np.ndarray]:
        return [np.r_[s, v] for s, v in zip(self.train, self.valid_target, strict=True)]

    def titles(self) -> list[str]:
        return self.items["Description"].fillna("").str.strip().tolist()


def load_rec_data(quick: bool, seed: int) -> RecData:
    df, rep = load_retail()
    seqs, items, cust = retail_sequences(df)
    keep = [i for i, s in enumerate(seqs) if len(s) >= 3]
    if quick:  # a fixed random subset of customers; the catalogue stays whole
        keep = sorted(np.random.default_rng(seed).choice(keep, size=500, replace=False).tolist())
    seqs = [seqs[i] for i in keep]
    return RecData(
        items,
        cust[keep],
        [s[:-2] for s in seqs],
        np.array([s[-2] for s in seqs]),
        np.array([s[-1] for s in seqs]),
        20 if quick else 50,
        rep.rows_out,
        rep.to_dict(),
    )


def popularity(data: RecData) -> np.ndarray:
    """Purchases per item in the training events and validation targets (the cold-start order)."""
    events = np.concatenate(data.train + [data.valid_target])
    return np.bincount(events, minlength=data.n_items).astype(np.float32)


def training_windows(
    train: list[np.ndarray], max_len: int, per_user: int = 2, loss_positions: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded training windows: tokens (item + 1, 0 pad) and next-item targets (-100 pad).

    At most `per_user` windows per customer, the most recent ones: a CPU epoch then takes a
    minute instead of three, and recent behaviour is what the held-out targets follow. Only the last
    `loss_positions` targets of a window carry a loss (each still sees the whole window before it):
    the softmax over the full catalogue is most of the cost."""
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
