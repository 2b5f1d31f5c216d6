"""The three real datasets, loaded and cleaned by written-down rules whose effects are counted.

Every loader returns the cleaned frame and a `CleaningReport`: one `(rule, rows_dropped,
rows_left)` line per rule, in the order applied. docs/models.md copies these counts; the files
and their licences are in `data/*/SOURCE.md`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DATA_DIR",
    "CleaningReport",
    "load_retail",
    "load_retail_cancellations",
    "read_retail",
    "load_reviews",
    "load_shoppers",
    "retail_sequences",
]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
RETAIL_CSV = DATA_DIR / "online-retail-uci" / "online_retail.csv.gz"
REVIEWS_CSV = (
    DATA_DIR / "womens-ecommerce-clothing-reviews" / "womens_clothing_ecommerce_reviews.csv.gz"
)
SHOPPERS_CSV = DATA_DIR / "online-shoppers-intention" / "online_shoppers_intention.csv.gz"

# Product stock codes are five digits and an optional letter suffix (85123A); everything else in
# the file is a fee, postage, manual adjustment, voucher or sample (POST, DOT, M, C2, gift_0001_20 ...).
PRODUCT_CODE = r"^\d{5}[A-Za-z]*$"


@dataclass
class CleaningReport:
    dataset: str
    rows_in: int
    steps: list[tuple[str, int, int]] = field(default_factory=list)

    def apply(self, df: pd.DataFrame, keep: pd.Series, rule: str) -> pd.DataFrame:
        out = df[keep]
        self.steps.append((rule, int(len(df) - len(out)), int(len(out))))
        return out

    @property
    def rows_out(self) -> int:
        return self.steps[-1][2] if self.steps else self.rows_in

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rules": [{"rule": r, "dropped": d, "left": n} for r, d, n in self.steps],
        }

    def markdown(self) -> str:
        lines = [
            f"{self.dataset}: {self.rows_in:,} rows in",
            "",
            "| rule | dropped | left |",
            "|---|---:|---:|",
        ]
        lines += [f"| {r} | {d:,} | {n:,} |" for r, d, n in self.steps]
        return "\n".join(lines)


def read_retail() -> pd.DataFrame:
    """The raw Online Retail file, every line (cancellations too)."""
    return pd.read_csv(
        RETAIL_CSV,
        dtype={"InvoiceNo": str, "StockCode": str, "Description": str, "Country": str},
        parse_dates=["InvoiceDate"],
    )


def load_retail(raw: pd.DataFrame | None = None) -> tuple[pd.DataFrame, CleaningReport]:
    """Online Retail invoice lines that are real purchases of products by known customers
    (`raw`: the file as `read_retail` returns it, when the caller has read it already)."""
    df = read_retail() if raw is None else raw
    rep = CleaningReport("Online Retail (UCI)", len(df))
    df = rep.apply(
        df, ~df["InvoiceNo"].str.startswith("C"), "cancellation invoices (InvoiceNo starts with C)"
    )
    df = rep.apply(df, df["Quantity"] > 0, "Quantity <= 0 (returns and stock adjustments)")
    df = rep.apply(df, df["UnitPrice"] > 0, "UnitPrice <= 0 (free items, bad-debt adjustments)")
    df = rep.apply(df, df["CustomerID"].notna(), "missing CustomerID (no purchase sequence)")
    df = rep.apply(
        df,
        df["StockCode"].str.match(PRODUCT_CODE),
        "non-product StockCode (POST, DOT, M, fees, vouchers)",
    )
    df = rep.apply(df, ~df.duplicated(), "exact duplicate invoice lines")
    df = df.assign(
        CustomerID=df["CustomerID"].astype(np.int64), StockCode=df["StockCode"].str.upper()
    )
    return df.reset_index(drop=True), rep


def retail_sequences(df: pd.DataFrame) -> tuple[list[np.ndarray], pd.DataFrame, np.ndarray]:
    """Per-customer item sequences in time order, one event per distinct (invoice, item).

    Returns the sequences (item indices, int64), the item table (row = item index: StockCode,
    Description, price = median unit price, count = invoices) and the customer id of each sequence. Repeats of an item within one invoice are one
    event; a consecutive repeat of the same item across invoices is also kept once (re-buying the
    same item is then a target only after something else was bought).
    """
    lines = df.sort_values(["CustomerID", "InvoiceDate", "InvoiceNo"], kind="stable")
    lines = lines.drop_duplicates(["CustomerID", "InvoiceNo", "StockCode"])
    items = (
        df.groupby("StockCode")
        .agg(
            Description=("Description", lambda s: s.mode().iat[0] if s.notna().any() else ""),
            price=("UnitPrice", "median"),
            count=("InvoiceNo", "nunique"),
        )
        .reset_index()
    )
    code_to_idx = {c: i for i, c in enumerate(items["StockCode"])}
    idx = lines["StockCode"].map(code_to_idx).to_numpy(np.int64)
    cust = lines["CustomerID"].to_numpy()
    bounds = np.flatnonzero(np.diff(cust)) + 1
    seqs = []
    for s in np.split(idx, bounds):
        keep = np.ones(len(s), bool)
        keep[1:] = s[1:] != s[:-1]
        seqs.append(s[keep])
    return seqs, items, cust[np.r_[0, bounds]]


def load_retail_cancellations(raw: pd.DataFrame) -> tuple[pd.DataFrame, CleaningReport]:
    """The cancellation lines (InvoiceNo `C...`) of products by known customers, as
    `load_retail` keeps purchases: CustomerID int64, StockCode upper-case; Quantity stays
    negative (the quantity cancelled)."""
    rep = CleaningReport("Online Retail (UCI) cancellation lines", len(raw))
    df = rep.apply(raw, raw["InvoiceNo"].str.startswith("C"), "not a cancellation invoice")
    df = rep.apply(df, df["Quantity"] < 0, "Quantity >= 0")
    df = rep.apply(df, df["CustomerID"].notna(), "missing CustomerID (no purchase to match)")
    df = rep.apply(
        df,
        df["StockCode"].str.match(PRODUCT_CODE),
        "non-product StockCode (D discounts, POST, M, fees)",
    )
    df = rep.apply(df, ~df.duplicated(), "exact duplicate cancellation lines")
    df = df.assign(
        CustomerID=df["CustomerID"].astype(np.int64), StockCode=df["StockCode"].str.upper()
    )
    return df.reset_index(drop=True), rep


def load_reviews() -> tuple[pd.DataFrame, CleaningReport]:
    """Reviews with text, labels derived: sentiment (0 neg, 1 neu, 2 pos), recommended, department."""
    df = pd.read_csv(REVIEWS_CSV, index_col=0)
    rep = CleaningReport("Women's E-Commerce Clothing Reviews", len(df))
    text = df["Review Text"].fillna("").str.strip()
    df = rep.apply(df, text != "", "empty or missing Review Text")
    title = df["Title"].fillna("").str.strip()
    body = df["Review Text"].str.strip()
    df = df.assign(text=np.where(title != "", title + ". " + body, body))
    df = rep.apply(df, ~df["text"].duplicated(), "duplicate texts (title + review), first kept")
    df = df.assign(
        sentiment=np.select([df["Rating"] <= 2, df["Rating"] == 3], [0, 1], 2).astype(np.int64),
        recommended=df["Recommended IND"].astype(np.int64),
        department=df["Department Name"].fillna(""),
    )
    return df.reset_index(drop=True), rep


def load_shoppers() -> tuple[pd.DataFrame, CleaningReport]:
    df = pd.read_csv(SHOPPERS_CSV)
    rep = CleaningReport("Online Shoppers Purchasing Intention", len(df))
    df = rep.apply(df, ~df.duplicated(), "exact duplicate sessions (all 18 columns equal)")
    df = rep.apply(df, df.notna().all(axis=1), "rows with a missing value")
    return df.reset_index(drop=True), rep
