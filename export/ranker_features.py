"""The ranker's features: derived item and user tables, retrieval of candidates, and the kernel.

Online Retail has no categories or user attributes; they are derived here:
- item category: k-means over the MiniLM embeddings of the item descriptions;
- item price: median unit price; item popularity: invoices;
- user features from the customer's events before the query (never the target): frequency
  (events), distinct items, monetary value (sum of item prices), mean price paid, country code;
- user-category affinity: share of the user's events in each category;
- recent item / category: decayed counts over the last `RANKING.recent_items` history items with
  age = `RANKING.recent_age_step_s` (1 day) per step back (position-based, so serving computes
  the same from a history without timestamps).
The artifacts are written with the names of `RANKING` (a `RankingSpec`), into the ranker's
version folder, where the recommend pipeline reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export import onnx_tools
from export.options import ExportOptions
from export.recommender import HISTORY, RANK_CANDIDATES, RANKING, RecData, encode_histories
from kernels.feature_spec import Feature, FeatureSpec
from kernels.features import FeatureTables, assemble_features

__all__ = [
    "FEATURE_SPEC",
    "ITEM_COLS",
    "USER_COLS",
    "Queries",
    "Retriever",
    "build_tables",
    "customer_countries",
    "feature_spec",
    "item_categories",
    "ndcg",
    "save_ranking_artifacts",
]

DAY_S = 86400.0
USER_COLS = ["log_events", "log_distinct_items", "log_monetary", "mean_price", "country"]
ITEM_COLS = ["log_invoices", "price"]
FEATURE_SPEC = FeatureSpec(
    (
        Feature("user_log_events", "user", column=0),
        Feature("user_log_distinct", "user", column=1),
        Feature("user_log_monetary", "user", column=2),
        Feature("user_mean_price", "user", column=3, transform="log1p"),
        Feature("item_log_invoices", "item", column=0),
        Feature("item_price", "item", column=1, transform="log1p"),
        Feature("price_ratio", "price_ratio", column=1, column2=3, transform="log1p"),
        Feature("category_affinity", "affinity"),
        Feature("recent_item_7d", "recent_item", half_life_s=7 * DAY_S, transform="log1p"),
        Feature("recent_item_90d", "recent_item", half_life_s=90 * DAY_S, transform="log1p"),
        Feature("recent_category_7d", "recent_category", half_life_s=7 * DAY_S, transform="log1p"),
        Feature(
            "recent_category_90d", "recent_category", half_life_s=90 * DAY_S, transform="log1p"
        ),
    )
)


def feature_spec() -> FeatureSpec:
    return FEATURE_SPEC


# -- derived tables ------------------------------------------------------------------------------


def _minilm_embeddings(titles: list[str]) -> np.ndarray:
    """Mean-pooled, normalised MiniLM embeddings of the lower-cased descriptions."""
    import torch

    from export.text import load_teacher

    tok, bert, _ = load_teacher()
    emb = []
    with torch.no_grad():
        for i in range(0, len(titles), 256):
            enc = tok(
                [t.lower() for t in titles[i : i + 256]],
                truncation=True,
                max_length=16,
                padding=True,
                return_tensors="pt",
            )
            h = bert(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            e = (h * m).sum(1) / m.sum(1)
            emb.append(torch.nn.functional.normalize(e, dim=1).numpy())
    return np.concatenate(emb)


def _tfidf_embeddings(titles: list[str], seed: int) -> np.ndarray:
    """--quick only: TF-IDF + SVD stands in for MiniLM (seconds instead of a minute)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TruncatedSVD(32, random_state=seed).fit_transform(
        TfidfVectorizer().fit_transform(titles)
    )


def item_categories(opts: ExportOptions, titles: list[str], k: int) -> np.ndarray:
    """k-means over MiniLM embeddings of the descriptions (cached per build)."""
    from sklearn.cluster import KMeans

    cache = opts.cache / "item_minilm.npy"
    if opts.quick:
        emb = _tfidf_embeddings(titles, opts.seed)
    elif cache.exists():
        emb = np.load(cache)
    else:
        emb = _minilm_embeddings(titles)
        np.save(cache, emb)
    return KMeans(k, n_init=3, random_state=opts.seed).fit_predict(emb).astype(np.int64)


def customer_countries(data: RecData) -> np.ndarray:
    """Each customer's most frequent country, as an index into the sorted country names."""
    from export.data import load_retail

    retail, _ = load_retail()
    codes = {c: i for i, c in enumerate(sorted(retail["Country"].unique()))}
    country = retail.groupby("CustomerID")["Country"].agg(lambda s: s.mode().iat[0])
    return np.array([codes[country[c]] for c in data.customers], np.float32)


def _user_row(h: np.ndarray, price: np.ndarray, country: float) -> list[float]:
    return [
        np.log1p(len(h)),
        np.log1p(len(np.unique(h))),
        np.log1p(price[h].sum()),
        price[h].mean() if len(h) else 0.0,
        country,
    ]


def build_tables(
    data: RecData, hists: list[np.ndarray], countries: np.ndarray, category: np.ndarray
) -> FeatureTables:
    """User rows (one per history, + row 0 = unknown user) and the item and affinity tables."""
    price = data.items["price"].to_numpy(np.float32)
    users = np.zeros((len(hists) + 1, len(USER_COLS)), np.float32)
    indptr, acat, aval = [0, 0], [], []
    for u, h in enumerate(hists, start=1):
        users[u] = _user_row(h, price, countries[u - 1])
        c, n = np.unique(category[h], return_counts=True)
        acat.extend(c.tolist())
        aval.extend((n / max(len(h), 1)).tolist())
        indptr.append(len(acat))
    users[RANKING.unknown_user_row, :4] = users[1:, :4].mean(0)
    items = np.stack([np.log1p(data.items["count"].to_numpy(np.float32)), price], axis=1)
    return FeatureTables(
        users,
        items,
        category,
        np.array(indptr, np.int64),
        np.array(acat, np.int64),
        np.array(aval, np.float32),
    )


def assemble(
    tables: FeatureTables, hists: list[np.ndarray], user_rows: np.ndarray, cands: np.ndarray
) -> np.ndarray:
    """[n_queries * K, F] via the kernel, with the recent items as the server derives them."""
    b, k = cands.shape
    recent = [h[-RANKING.recent_items :] for h in hists]
    r_ptr = np.r_[0, np.cumsum([len(r) for r in recent])].astype(np.int64)
    r_ids = np.concatenate(recent).astype(np.int64)
    step = RANKING.recent_age_step_s
    ages = np.concatenate([(len(r) - np.arange(len(r))) * step for r in recent])
    out = np.empty((b * k, FEATURE_SPEC.n_features), np.float32)
    return assemble_features(
        FEATURE_SPEC,
        tables,
        user_rows.astype(np.int64),
        np.arange(0, b * k + 1, k, dtype=np.int64),
        cands.reshape(-1).astype(np.int64),
        r_ptr,
        r_ids,
        ages.astype(np.float32),
        out,
    )


# -- queries: retrieved candidates with their features and labels ----------------------------------


@dataclass
class Queries:
    """One query per customer: the top-K retrieved candidates, in retrieval order."""

    cands: np.ndarray  # int64 [q, K] item indices
    x: np.ndarray  # float32 [q, K, F] kernel features
    s: np.ndarray  # float32 [q, K] retrieval scores
    y: np.ndarray  # float32 [q, K]: 1 for the target

    def __len__(self) -> int:
        return len(self.cands)

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """(features [q*K, F], retrieval_score [q*K, 1]): the model's two inputs."""
        return self.x.reshape(-1, self.x.shape[2]), self.s.reshape(-1, 1)


@dataclass
class Retriever:
    """The published query encoder and item matrix: histories -> top-K candidates."""

    sess: object
    item_emb: np.ndarray
    max_len: int
    k: int = RANK_CANDIDATES

    def top_k(self, hists: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        feeds = {HISTORY.name: encode_histories(hists, self.max_len)}
        s = onnx_tools.run_session(self.sess, feeds)[0] @ self.item_emb.T
        top = np.argpartition(-s, self.k, axis=1)[:, : self.k]
        ts = np.take_along_axis(s, top, 1)
        order = np.argsort(-ts, axis=1, kind="stable")
        return np.take_along_axis(top, order, 1), np.take_along_axis(ts, order, 1)

    def queries(
        self, tables: FeatureTables, hists: list[np.ndarray], targets: np.ndarray
    ) -> Queries:
        top, ts = self.top_k(hists)
        users = np.arange(1, len(hists) + 1)  # row u + 1 is customer u
        x = assemble(tables, hists, users, top).reshape(len(hists), self.k, -1)
        y = (top == targets[:, None]).astype(np.float32)
        return Queries(top, x, ts.astype(np.float32), y)


def ndcg(scores: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """NDCG@k with one relevant item per query (0 if it was not retrieved)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    hit = np.take_along_axis(labels, order, 1)[:, :k]
    return round(float((hit / np.log2(np.arange(2, k + 2))).sum(1).mean()), 4)


def save_ranking_artifacts(version: Path, tables: FeatureTables, customers: np.ndarray) -> None:
    """The feature spec, tables and user ids, named as `RANKING` names them."""
    FEATURE_SPEC.save(version / RANKING.feature_spec)
    files = RANKING.tables
    for field in files.__struct_fields__:
        np.save(version / getattr(files, field), getattr(tables, field))
    # row 0 is the unknown user; row u + 1 is customer `user_ids[u]`
    (version / RANKING.user_ids).write_text(json.dumps([int(c) for c in customers]))
