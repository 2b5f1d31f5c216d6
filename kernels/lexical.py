"""Lexical product search over a sparse inverted index, and its fusion with semantic scores.

One module for export (which builds the index and evaluates with it) and the server (which
scores queries with it), so the two cannot drift: the analyzers, the query weighting, the sparse
dot product and the score fusion are all here. Two weightings:

- `tfidf`: scikit-learn's `TfidfVectorizer(analyzer="char_wb", sublinear_tf=True)` exactly
  (character n-grams inside word boundaries, tf = 1 + ln(count), smooth idf = ln((1+n)/(1+df)) + 1,
  rows L2-normalised): a query's score is its cosine to each product;
- `bm25`: Okapi BM25 over words (scikit-learn's default token pattern), idf = ln(1 + (n - df +
  0.5) / (df + 0.5)), each distinct query word counted once.

The index is stored by term (postings): `indptr` int64 [n_terms + 1], `items` int32 [nnz] and
`weights` float32 [nnz], so a query touches only the postings of its own terms.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = [
    "LexicalIndex",
    "analyze",
    "build_bm25",
    "build_tfidf",
    "fuse_scores",
    "inner_products",
    "sparse_scores",
]

_WHITE_SPACES = re.compile(r"\s\s+")  # scikit-learn's, for char_wb
_WORD = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern
BM25_K1 = 1.2
BM25_B = 0.75


def _char_wb(text: str, n_min: int, n_max: int) -> list[str]:
    """scikit-learn's `_char_wb_ngrams`: n-grams of each word padded with one space each side."""
    out = []
    for w in _WHITE_SPACES.sub(" ", text).split():
        w = " " + w + " "
        for n in range(n_min, n_max + 1):
            offset = 0
            out.append(w[offset : offset + n])
            while offset + n < len(w):
                offset += 1
                out.append(w[offset : offset + n])
            if offset == 0:  # a word shorter than n is counted once
                break
    return out


def analyze(text: str, analyzer: str, n_min: int = 2, n_max: int = 4) -> list[str]:
    """The terms of `text` (lower-cased): `char_wb` n-grams or `word` tokens."""
    text = text.lower()
    if analyzer == "char_wb":
        return _char_wb(text, n_min, n_max)
    if analyzer == "word":
        return _WORD.findall(text)
    raise ValueError(f"unknown analyzer {analyzer!r}")


@njit(nogil=True, cache=True)
def _scores(indptr, items, weights, terms, q_weights, out):  # type: ignore[no-untyped-def]
    """out float32[n_items] += q_weights[j] * weights over the postings of terms[j]."""
    out[:] = 0.0
    for j in range(terms.shape[0]):
        t = terms[j]
        w = q_weights[j]
        for p in range(indptr[t], indptr[t + 1]):
            out[items[p]] += w * weights[p]


def sparse_scores(
    indptr: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    terms: np.ndarray,
    q_weights: np.ndarray,
    n_items: int,
) -> np.ndarray:
    """float32 [n_items]: the sum over query terms of q_weight x the term's posting weights.
    indptr int64 [n_terms + 1]; items int32 [nnz]; weights float32 [nnz]; terms int64 [q];
    q_weights float32 [q]."""
    if terms.shape != q_weights.shape:
        raise ValueError("terms and q_weights differ in shape")
    if len(terms) and (terms.min() < 0 or terms.max() >= len(indptr) - 1):
        raise ValueError("a term id is outside the index")
    out = np.empty(n_items, np.float32)
    _scores(indptr, items, weights, terms.astype(np.int64), q_weights.astype(np.float32), out)
    return out


@njit(nogil=True, cache=True, fastmath=True)  # fastmath: the dot product may vectorise
def _inner_products(items, query, out):  # type: ignore[no-untyped-def]
    for i in range(items.shape[0]):
        acc = np.float32(0.0)
        for j in range(items.shape[1]):
            acc += items[i, j] * query[j]
        out[i] = acc


def inner_products(items: np.ndarray, query: np.ndarray) -> np.ndarray:
    """float32 [n_items]: items float32 [n_items, d] (C order) x query float32 [d], on the
    calling thread. numpy's matrix-vector product may hand this to a multi-threaded BLAS,
    whose threads spin for cores on a loaded machine (20 ms instead of 0.2 ms here)."""
    if items.ndim != 2 or query.shape != (items.shape[1],):
        raise ValueError(f"items {items.shape} and query {query.shape} do not match")
    out = np.empty(items.shape[0], np.float32)
    _inner_products(
        np.ascontiguousarray(items, np.float32), np.ascontiguousarray(query, np.float32), out
    )
    return out


@dataclass(frozen=True, eq=False)
class LexicalIndex:
    """A product index: how texts become terms, the vocabulary, idf and the postings."""

    analyzer: str  # "char_wb" | "word"
    weighting: str  # "tfidf" | "bm25"
    n_min: int
    n_max: int
    vocabulary: dict[str, int]
    idf: np.ndarray  # float32 [n_terms]
    indptr: np.ndarray  # int64 [n_terms + 1]
    items: np.ndarray  # int32 [nnz]
    weights: np.ndarray  # float32 [nnz]
    n_items: int

    def __post_init__(self) -> None:
        n = len(self.vocabulary)
        if self.idf.shape != (n,) or self.indptr.shape != (n + 1,):
            raise ValueError(f"idf {self.idf.shape} / indptr {self.indptr.shape} vs {n} terms")
        if self.items.shape != self.weights.shape or int(self.indptr[-1]) != len(self.items):
            raise ValueError("postings: indptr, items and weights disagree")
        if len(self.items) and (self.items.min() < 0 or self.items.max() >= self.n_items):
            raise ValueError(f"postings name items outside [0, {self.n_items})")

    def query(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(term ids int64, weights float32) of a query; unknown terms are dropped."""
        vocab = self.vocabulary
        ids, counts = [], []
        for t, c in Counter(analyze(text, self.analyzer, self.n_min, self.n_max)).items():
            i = vocab.get(t)
            if i is not None:
                ids.append(i)
                counts.append(c)
        terms = np.array(ids, np.int64)
        if self.weighting == "bm25" or not ids:
            return terms, np.ones(len(ids), np.float32)
        w = (1.0 + np.log(np.array(counts, np.float32))) * self.idf[terms]
        return terms, w / np.float32(np.sqrt(w @ w))

    def scores(self, text: str) -> np.ndarray:
        """float32 [n_items]: the lexical score of every product for `text`."""
        terms, w = self.query(text)
        return sparse_scores(self.indptr, self.items, self.weights, terms, w, self.n_items)


def _postings(
    rows: list[dict[int, float]], n_terms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-item {term: weight} -> postings by term (items ascending within a term)."""
    df = np.zeros(n_terms, np.int64)
    for r in rows:
        for t in r:
            df[t] += 1
    indptr = np.zeros(n_terms + 1, np.int64)
    np.cumsum(df, out=indptr[1:])
    fill = indptr[:-1].copy()
    items = np.empty(indptr[-1], np.int32)
    weights = np.empty(indptr[-1], np.float32)
    for i, r in enumerate(rows):
        for t, w in r.items():
            items[fill[t]], weights[fill[t]] = i, w
            fill[t] += 1
    return indptr, items, weights


def _vocabulary(docs: list[Counter]) -> dict[str, int]:
    return {t: i for i, t in enumerate(sorted({t for d in docs for t in d}))}


def build_tfidf(texts: list[str], n_min: int = 2, n_max: int = 4) -> LexicalIndex:
    """scikit-learn's char_wb TF-IDF (sublinear tf, smooth idf, L2 rows) as postings."""
    docs = [Counter(analyze(t, "char_wb", n_min, n_max)) for t in texts]
    vocab = _vocabulary(docs)
    df = np.zeros(len(vocab), np.float64)
    for d in docs:
        for t in d:
            df[vocab[t]] += 1
    idf = np.log((1 + len(docs)) / (1 + df)) + 1.0
    rows = []
    for d in docs:
        w = {vocab[t]: (1.0 + math.log(c)) * idf[vocab[t]] for t, c in d.items()}
        norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
        rows.append({t: v / norm for t, v in w.items()})
    return LexicalIndex(
        "char_wb", "tfidf", n_min, n_max, vocab, idf.astype(np.float32),
        *_postings(rows, len(vocab)), len(texts),
    )  # fmt: skip


def build_bm25(texts: list[str], k1: float = BM25_K1, b: float = BM25_B) -> LexicalIndex:
    """Okapi BM25 over words: a posting's weight is idf x tf (k1 + 1) / (tf + k1 (1 - b + b dl /
    avgdl)), so a query's score is the sum over its distinct known words."""
    docs = [Counter(analyze(t, "word")) for t in texts]
    vocab = _vocabulary(docs)
    df = np.zeros(len(vocab), np.float64)
    for d in docs:
        for t in d:
            df[vocab[t]] += 1
    n = len(docs)
    idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
    lens = np.array([sum(d.values()) for d in docs], np.float64)
    avg = float(lens.mean()) if n and lens.mean() > 0 else 1.0
    rows = []
    for d, dl in zip(docs, lens, strict=True):
        norm = k1 * (1 - b + b * dl / avg)
        rows.append({vocab[t]: idf[vocab[t]] * c * (k1 + 1) / (c + norm) for t, c in d.items()})
    return LexicalIndex(
        "word", "bm25", 1, 1, vocab, idf.astype(np.float32), *_postings(rows, len(vocab)), n
    )


def fuse_scores(lexical: np.ndarray, semantic: np.ndarray, lexical_weight: float) -> np.ndarray:
    """The served hybrid score: `w * lexical / max(lexical) + (1 - w) * min-max(semantic)`, per
    row over the whole catalogue (filters do not change the scores). lexical, semantic float32
    [n_items] or [n_queries, n_items]; a query with no lexical match ranks by semantics alone."""
    lex = np.atleast_2d(lexical).astype(np.float32)
    sem = np.atleast_2d(semantic).astype(np.float32)
    top = lex.max(1, keepdims=True)
    lex_n = np.divide(lex, top, out=np.zeros_like(lex), where=top > 0)
    lo, hi = sem.min(1, keepdims=True), sem.max(1, keepdims=True)
    span = hi - lo
    sem_n = np.divide(sem - lo, span, out=np.zeros_like(sem), where=span > 0)
    out = lexical_weight * lex_n + (1.0 - lexical_weight) * sem_n
    return out.reshape(np.shape(lexical)) if np.ndim(lexical) == 1 else out
