"""The ranker's features: derived item and user tables, retrieval of candidates, and the kernel.

Online Retail has no categories or user attributes; they are derived here, and no table holds
anything a query's target could have put there:
- item category: k-means over the MiniLM embeddings of the item descriptions (catalogue text);
- item popularity and price: events and median unit price paid over the TRAINING events only
  (every customer's events before their validation item: leave-one-out's training sequences);
  an item without a training event gets the median price of all training events;
- user features from the customer's events before the query's target (a per-customer prefix):
  frequency (events), distinct items, monetary value (sum of unit prices paid), mean price paid,
  country (the most frequent in the prefix);
- user-category affinity: share of the prefix's events in each category;
- recent item / category: decayed counts over the last `RANKING.recent_items` history items with
  age = `RANKING.recent_age_step_s` (1 day) per step back (position-based, so serving computes
  the same from a history without timestamps).
Training queries use the prefixes before each validation target; test queries and the PUBLISHED
tables the prefixes before each test target (training events + the validation item): no test
target is in any table (tests/export/test_ranker_leakage.py removes them and compares).
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
    "feature_spec",
    "item_categories",
    "item_table",
    "ndcg",
    "save_ranking_artifacts",
]

DAY_S = 86400.0
USER_COLS = ["log_events", "log_distinct_items", "log_monetary", "mean_price", "country"]
ITEM_COLS = ["log_train_events", "price"]
FEATURE_SPEC = FeatureSpec(
    (
        Feature("user_log_events", "user", column=0),
        Feature("user_log_distinct", "user", column=1),
        Feature("user_log_monetary", "user", column=2),
        Feature("user_mean_price", "user", column=3, transform="log1p"),
        Feature("item_log_train_events", "item", column=0),
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
    """k-means over MiniLM embeddings of the descriptions (cached per build; TF-IDF + SVD for
    --quick and the preview tier, whose budget a minute of MiniLM would take)."""
    from sklearn.cluster import KMeans

    cache = opts.cache / "item_minilm.npy"
    if opts.quick or opts.preview:
        emb = _tfidf_embeddings(titles, opts.seed)
    elif cache.exists():
        emb = np.load(cache)
    else:
        emb = _minilm_embeddings(titles)
        np.save(cache, emb)
    return KMeans(k, n_init=3, random_state=opts.seed).fit_predict(emb).astype(np.int64)


def item_table(data: RecData) -> np.ndarray:
    """[n_items, 2]: log1p(training events), median unit price paid in training events."""
    train = data.loo.train
    n = np.bincount(np.concatenate(train), minlength=data.n_items).astype(np.float32)
    items = np.concatenate(train)
    paid = np.concatenate([p[: len(s)] for p, s in zip(data.paid, train, strict=True)])
    price = np.full(data.n_items, np.median(paid), np.float32)
    order = np.argsort(items, kind="stable")
    bounds = np.flatnonzero(np.diff(items[order])) + 1
    for group in np.split(order, bounds):
        price[items[group[0]]] = np.median(paid[group])
    return np.stack([np.log1p(n), price], axis=1)


def _user_row(items: np.ndarray, paid: np.ndarray, country: np.ndarray) -> list[float]:
    return [
        np.log1p(len(items)),
        np.log1p(len(np.unique(items))),
        np.log1p(paid.sum()),
        paid.mean() if len(paid) else 0.0,
        float(np.bincount(country).argmax()) if len(country) else 0.0,
    ]


def build_tables(data: RecData, prefix: list[int], category: np.ndarray) -> FeatureTables:
    """User rows from each customer's first `prefix[c]` events (row c + 1; row 0 = unknown
    user: the mean), the item table from training events, the affinity CSR from the prefixes."""
    users = np.zeros((len(prefix) + 1, len(USER_COLS)), np.float32)
    indptr, acat, aval = [0, 0], [], []
    for u, n in enumerate(prefix, start=1):
        h = data.seqs[u - 1][:n]
        users[u] = _user_row(h, data.paid[u - 1][:n], data.country[u - 1][:n])
        c, k = np.unique(category[h], return_counts=True)
        acat.extend(c.tolist())
        aval.extend((k / max(len(h), 1)).tolist())
        indptr.append(len(acat))
    users[RANKING.unknown_user_row, :4] = users[1:, :4].mean(0)
    return FeatureTables(
        users,
        item_table(data),
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

    def take(self, idx: np.ndarray) -> Queries:
        return Queries(self.cands[idx], self.x[idx], self.s[idx], self.y[idx])

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """(features [q*K, F], retrieval_score [q*K, 1]): the model's two inputs."""
        return self.x.reshape(-1, self.x.shape[2]), self.s.reshape(-1, 1)


@dataclass
class Retriever:
    """The published query encoder and item matrix: histories -> top-K candidates."""

    sess: object
    item_emb: np.ndarray
    max_len: int  # the pipeline's max_history: histories are cut to their last max_len items
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
