"""Review and product text for the text family: loading and splits, tokenisation, the
serving tokenizer.json, and the search pipeline folder."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from export.data import load_retail, load_reviews, retail_sequences
from export.options import ExportOptions
from export.repository import ModelFolder, config_toml

__all__ = ["TASKS", "TextData"]

TASKS = {
    "sentiment": ["negative", "neutral", "positive"],
    "recommended": ["no", "yes"],
    "department": None,  # the dataset's Department Name values, sorted
}


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


def _load(quick: bool, seed: int) -> TextData:
    df, rep = load_reviews()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(df))
    n_tr, n_va, n_te = (200, 80, 150) if quick else (3000, 800, 1500)
    tr, va, te = order[:n_tr], order[n_tr : n_tr + n_va], order[n_tr + n_va : n_tr + n_va + n_te]
    depts = sorted(d for d in df["department"].unique() if d)
    labels = {
        "sentiment": df["sentiment"].to_numpy(),
        "recommended": df["recommended"].to_numpy(),
        "department": df["department"]
        .map({d: i for i, d in enumerate(depts)})
        .fillna(-1)
        .astype(int)
        .to_numpy(),
    }
    retail, _ = load_retail()
    _, items, _ = retail_sequences(retail)
    products = items["Description"].fillna("").str.strip().str.lower().tolist()
    if quick:
        products = products[:200]
    # queries: two-word spans of product descriptions (what a shopper types) and held-out review titles
    spans = []
    for p in rng.choice(products, size=60 if quick else 600, replace=False):
        w = p.split()
        i = int(rng.integers(0, max(1, len(w) - 1)))
        spans.append(" ".join(w[i : i + 2]))
    titles = df["Title"].fillna("").str.strip()
    queries = list(
        dict.fromkeys(
            spans + [t for t in dict.fromkeys(titles.iloc[te]) if t][: 20 if quick else 400]
        )
    )
    return TextData(
        df["text"].tolist(),
        labels,
        {"train": tr, "valid": va, "test": te},
        {**{k: v for k, v in TASKS.items() if v}, "department": depts},
        rep.rows_out,
        rep.to_dict(),
        products,
        queries,
    )


def _dataset(data: TextData, quick: bool) -> dict:
    n = {k: len(v) for k, v in data.split.items()}
    return {
        "name": "Women's E-Commerce Clothing Reviews (Kaggle, CC0)",
        "rows": data.rows,
        "split": f"random train/valid/test {n['train']}/{n['valid']}/{n['test']} reviews"
        + (" (--quick subset)" if quick else " (subset: CPU budget)"),
    }


def _tokenize(tok, texts: list[str], max_len: int) -> np.ndarray:
    enc = tok(texts, truncation=True, max_length=max_len, padding="max_length", return_tensors="np")
    return enc["input_ids"].astype(np.int64)


def _tokenizer_json(model_path: str, max_tokens: int) -> str:
    """The teacher's tokenizer.json with padding off (the server pads per batch) and truncation set."""
    from pathlib import Path

    t = json.loads((Path(model_path) / "tokenizer.json").read_text())
    t["padding"] = None
    t["truncation"] = {
        "direction": "Right",
        "max_length": max_tokens,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    return json.dumps(t)


def _write_search_pipeline(opts: ExportOptions, product_emb: np.ndarray, tok_json: str) -> None:
    retail, _ = load_retail()
    _, items, _ = retail_sequences(retail)
    # --quick embeds only the first products: the catalogue must match the embeddings row for row
    items = items.iloc[: len(product_emb)]
    folder = ModelFolder(opts.out, "search")
    v = folder.version
    np.save(v / "product_embeddings.npy", product_emb.astype(np.float32))
    (v / "item_ids.json").write_text(json.dumps(items["StockCode"].tolist()))
    (v / "item_titles.json").write_text(
        json.dumps(items["Description"].fillna("").str.strip().tolist())
    )
    np.save(v / "item_prices.npy", items["price"].to_numpy(np.float32))
    (v / "tokenizer.json").write_text(tok_json)
    folder.write_config(
        config_toml(
            "search",
            [],
            [],
            max_batch_size=0,
            platform="pipeline",
            parameters={
                "encoder": "search_encoder",
                "product_embeddings": "product_embeddings.npy",
                "item_ids": "item_ids.json",
                "item_titles": "item_titles.json",
                "item_prices": "item_prices.npy",
                "tokenizer": "tokenizer.json",
                "score": "inner_product",
            },
        )
    )
    folder.publish()
