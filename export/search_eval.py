"""Relevance metrics of the search card and the systems it compares.

A system maps a query set to a dense score matrix [n_queries, n_items] over the catalogue;
`ranked` keeps each query's top 10 (ties broken by catalogue row) and `relevance` scores them:

- recall@10 = relevant products in the top 10 / min(10, relevant products) (a known-item query
  has one or a few relevant products; a broad shopper query may have dozens, so recall is capped
  at what ten results can hold);
- MRR@10 = 1 / rank of the first relevant product in the top 10 (0 if none);
- nDCG@10 with binary gains, the ideal ranking holding min(10, relevant) relevant products.

Averages are over the queries with at least one relevant product; shopper queries for which no
pooled product was judged relevant are counted (`no_relevant`), not averaged. Products in a
shopper query's top 10 that were never judged count as not relevant and are counted
(`unjudged`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.search_data import QuerySet
from kernels.lexical import LexicalIndex, fuse_scores

__all__ = [
    "K",
    "lexical_scores",
    "ranked",
    "relevance",
    "semantic_scores",
    "tfidf_sklearn_scores",
    "choose_weight",
    "WEIGHTS",
    "WeightScore",
]

K = 10
WEIGHTS = tuple(round(float(w), 2) for w in np.arange(0.0, 1.0001, 0.05))  # lexical weight grid


def ranked(scores: np.ndarray, k: int = K) -> np.ndarray:
    """int64 [n_queries, k]: the rows of the k best products per query, best first (ties by
    lower row: a stable order for equal scores)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]


def relevance(top: np.ndarray, qs: QuerySet) -> dict[str, float]:
    """recall@10, MRR@10, nDCG@10 of ranked rows `top` on the query set `qs`."""
    rec, rr, ndcg, unjudged = [], [], [], 0
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    for i, rel in enumerate(qs.relevant):
        row = top[i].tolist()
        if qs.judged is not None:
            unjudged += sum(r not in qs.judged[i] for r in row)
        if not rel:
            continue
        hits = np.array([r in rel for r in row], np.float64)
        ideal = min(K, len(rel))
        rec.append(hits.sum() / ideal)
        first = np.flatnonzero(hits)
        rr.append(1.0 / (first[0] + 1) if len(first) else 0.0)
        ndcg.append(float(hits @ discounts[: len(row)]) / float(discounts[:ideal].sum()))
    out = {
        "recall@10": round(float(np.mean(rec)) if rec else 0.0, 4),
        "mrr@10": round(float(np.mean(rr)) if rr else 0.0, 4),
        "ndcg@10": round(float(np.mean(ndcg)) if ndcg else 0.0, 4),
        "queries": len(rec),
    }
    if qs.judged is not None:
        out["no_relevant"] = len(qs) - len(rec)
        out["unjudged"] = unjudged
    return out


def semantic_scores(queries: np.ndarray, products: np.ndarray) -> np.ndarray:
    """Inner products of unit query embeddings [q, d] with unit product embeddings [n, d]."""
    return queries.astype(np.float32) @ products.astype(np.float32).T


def lexical_scores(index: LexicalIndex, texts: list[str]) -> np.ndarray:
    return np.stack([index.scores(t) for t in texts]) if texts else np.zeros((0, index.n_items))


def tfidf_sklearn_scores(products: list[str], texts: list[str]) -> np.ndarray:
    """The TF-IDF baseline as a new user would write it with scikit-learn (char_wb 2-4 grams,
    sublinear tf, cosine): an implementation independent of the served index."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    p = vec.fit_transform(products)
    return (vec.transform(texts) @ p.T).toarray().astype(np.float32)


@dataclass(frozen=True)
class WeightScore:
    """One fusion weight on validation: how many targets it meets, its mean recall and nDCG."""

    met: int
    recall: float
    ndcg: float


def choose_weight(
    valid: dict[str, tuple[np.ndarray, np.ndarray, QuerySet]],
    targets: dict[str, list[float]] | None = None,
    weights: tuple[float, ...] = WEIGHTS,
) -> tuple[float, dict[float, WeightScore]]:
    """The lexical weight of the fusion, from VALIDATION only. `valid`: set name -> (lexical
    scores, semantic scores, its validation query set); `targets`: set name -> the validation
    recall@10 the hybrid should reach there (issue 10: TF-IDF's and the teacher-only semantic
    search's). The weight meeting the most targets wins; ties: the higher mean recall@10, the
    higher mean nDCG@10, the smaller weight."""
    targets = targets or {}
    table: dict[float, WeightScore] = {}
    for w in weights:
        ms = {
            k: relevance(ranked(fuse_scores(lex, sem, w)), qs)
            for k, (lex, sem, qs) in valid.items()
        }
        met = sum(ms[k]["recall@10"] >= t for k, ts in targets.items() for t in ts)
        table[w] = WeightScore(
            met,
            round(float(np.mean([m["recall@10"] for m in ms.values()])), 4),
            round(float(np.mean([m["ndcg@10"] for m in ms.values()])), 4),
        )
    best = max(weights, key=lambda w: (table[w].met, table[w].recall, table[w].ndcg, -w))
    return best, table
