"""Review and product text for the text family: loading and splits, token ids, and the serving
`tokenizer.json` (the data step of `export_text`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.data import load_retail, load_reviews, retail_sequences
from export.specs import TensorSpec

__all__ = [
    "INPUT_IDS",
    "MAX_TOKENS",
    "TASKS",
    "TextData",
    "TextIds",
    "catalog_items",
    "dataset_card",
    "load_text_data",
    "tokenize",
    "tokenize_all",
    "tokenizer_json",
]

TASKS = {
    "sentiment": ["negative", "neutral", "positive"],
    "recommended": ["no", "yes"],
    "department": None,  # the dataset's Department Name values, sorted
}
MAX_TOKENS = 128  # what the served tokenizer truncates to (classify and search)
PRODUCT_TOKENS = 24  # product descriptions and queries are short
# every text model's input: token ids [batch, tokens], 0 = pad (the mask is computed in-graph)
VOCAB = 30522  # the BERT uncased WordPiece vocabulary (MiniLM's, shared by every student)
MAX_POSITIONS = 512  # MiniLM's position table (the students keep it)
# token ids in the vocabulary, no longer than the position table: checked by the server before
# queueing, so one bad request cannot fail the batch it would join
INPUT_IDS = TensorSpec(
    "input_ids",
    "TYPE_INT64",
    (-1,),
    pad_value=0,
    min_value=0,
    max_value=VOCAB - 1,
    max_dims=(MAX_POSITIONS,),
)


@dataclass
class TextData:
    texts: list[str]
    labels: dict[str, np.ndarray]  # -1 = no label for that task
    split: dict[str, np.ndarray]
    label_names: dict[str, list[str]]
    rows: int
    cleaning: dict
    products: list[str]
    queries: list[str]

    @property
    def tasks(self) -> list[str]:
        return list(self.label_names)

    def y(self, task: str, split: str) -> np.ndarray:
        return self.labels[task][self.split[split]]

    def split_texts(self, split: str) -> np.ndarray:
        return np.array(self.texts, dtype=object)[self.split[split]]


@dataclass
class TextIds:
    """Token ids of every text the family trains or evaluates on."""

    split: dict[str, np.ndarray]  # train/valid/test reviews, [n, max_len]
    products: np.ndarray  # [n_products, PRODUCT_TOKENS]
    queries: np.ndarray  # [n_queries, PRODUCT_TOKENS]
    max_len: int

    @property
    def n_texts(self) -> int:
        return sum(len(v) for v in self.split.values()) + len(self.products)


def _queries(df, products: list[str], test: np.ndarray, quick: bool, rng) -> list[str]:
    """Two-word spans of product descriptions (what a shopper types) and held-out review titles."""
    spans = []
    for p in rng.choice(products, size=60 if quick else 600, replace=False):
        w = p.split()
        i = int(rng.integers(0, max(1, len(w) - 1)))
        spans.append(" ".join(w[i : i + 2]))
    titles = df["Title"].fillna("").str.strip()
    held_out = [t for t in dict.fromkeys(titles.iloc[test]) if t][: 20 if quick else 400]
    return list(dict.fromkeys(spans + held_out))


def catalog_items(n: int | None = None):
    """The Online Retail products (StockCode, Description, price), the first `n` if given."""
    retail, _ = load_retail()
    _, items, _ = retail_sequences(retail)
    return items if n is None else items.iloc[:n]


def load_text_data(quick: bool, seed: int) -> TextData:
    df, rep = load_reviews()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(df))
    n_tr, n_va, n_te = (200, 80, 150) if quick else (3000, 800, 1500)
    tr, va, te = order[:n_tr], order[n_tr : n_tr + n_va], order[n_tr + n_va : n_tr + n_va + n_te]
    depts = sorted(d for d in df["department"].unique() if d)
    dept = df["department"].map({d: i for i, d in enumerate(depts)}).fillna(-1).astype(int)
    labels = {
        "sentiment": df["sentiment"].to_numpy(),
        "recommended": df["recommended"].to_numpy(),
        "department": dept.to_numpy(),
    }
    products = catalog_items()["Description"].fillna("").str.strip().str.lower().tolist()
    if quick:
        products = products[:200]
    return TextData(
        df["text"].tolist(),
        labels,
        {"train": tr, "valid": va, "test": te},
        {**{k: v for k, v in TASKS.items() if v}, "department": depts},
        rep.rows_out,
        rep.to_dict(),
        products,
        _queries(df, products, te, quick, rng),
    )


def dataset_card(data: TextData, quick: bool) -> dict:
    """The reviews' `dataset` entry of a classifier card."""
    n = {k: len(v) for k, v in data.split.items()}
    return {
        "name": "Women's E-Commerce Clothing Reviews (Kaggle, CC0)",
        "rows": data.rows,
        "split": f"random train/valid/test {n['train']}/{n['valid']}/{n['test']} reviews"
        + (" (--quick subset)" if quick else " (subset: CPU budget)"),
    }


def tokenize(tok, texts: list[str], max_len: int) -> np.ndarray:
    enc = tok(texts, truncation=True, max_length=max_len, padding="max_length", return_tensors="np")
    return enc["input_ids"].astype(np.int64)


def tokenize_all(tok, data: TextData, max_len: int) -> TextIds:
    texts = np.array(data.texts, dtype=object)
    return TextIds(
        split={s: tokenize(tok, list(texts[ix]), max_len) for s, ix in data.split.items()},
        products=tokenize(tok, data.products, PRODUCT_TOKENS),
        queries=tokenize(tok, data.queries, PRODUCT_TOKENS),
        max_len=max_len,
    )


def tokenizer_json(model_path: str, max_tokens: int = MAX_TOKENS) -> str:
    """The teacher's tokenizer.json with padding off (the server pads per batch) and truncation set."""
    t = json.loads((Path(model_path) / "tokenizer.json").read_text())
    t["padding"] = None
    t["truncation"] = {
        "direction": "Right",
        "max_length": max_tokens,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    return json.dumps(t)
