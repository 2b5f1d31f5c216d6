"""kernels.lexical: the analyzers, BM25 by hand, the sparse kernel's checks and the fusion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kernels.lexical import (
    analyze,
    build_bm25,
    build_tfidf,
    fuse_scores,
    inner_products,
    sparse_scores,
)

TITLES = ["red heart mug", "white heart lantern", "blue mug", "red red candle"]


def test_char_wb_ngrams_pad_words_and_count_short_words_once():
    assert analyze("Ab", "char_wb", 2, 4) == [" a", "ab", "b ", " ab", "ab ", " ab "]
    assert analyze("a", "char_wb", 2, 4) == [" a", "a ", " a "]
    assert analyze("x  Y", "char_wb", 2, 2) == [" x", "x ", " y", "y "]
    assert analyze("Red-heart mug!", "word") == ["red", "heart", "mug"]
    with pytest.raises(ValueError, match="unknown analyzer"):
        analyze("x", "stems")


def test_bm25_scores_by_hand():
    index = build_bm25(TITLES, k1=1.2, b=0.75)
    n, avgdl = 4, 11 / 4
    idf = {w: math.log(1 + (n - df + 0.5) / (df + 0.5)) for w, df in (("red", 2), ("mug", 2))}

    def w(word: str, tf: int, dl: int) -> float:
        return idf[word] * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))

    got = index.scores("red mug mug")  # distinct words count once
    want = [w("red", 1, 3) + w("mug", 1, 3), 0.0, w("mug", 1, 2), w("red", 2, 3)]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_tfidf_rows_are_unit_and_a_title_matches_itself_best():
    index = build_tfidf(TITLES)
    for i, t in enumerate(TITLES):
        s = index.scores(t)
        assert s[i] == pytest.approx(1.0, abs=1e-5) and int(np.argmax(s)) == i
    assert not index.scores("zzzz").any()  # no known n-gram: all zero
    assert int(np.argmax(index.scores("lantren"))) == 1  # a typo keeps most n-grams


def test_sparse_scores_checks_term_ids():
    index = build_tfidf(TITLES)
    args = (index.indptr, index.items, index.weights)
    with pytest.raises(ValueError, match="outside the index"):
        sparse_scores(*args, np.array([len(index.vocabulary)]), np.ones(1, np.float32), 4)
    with pytest.raises(ValueError, match="differ in shape"):
        sparse_scores(*args, np.array([0, 1]), np.ones(1, np.float32), 4)


def test_index_refuses_postings_outside_the_catalogue():
    index = build_tfidf(TITLES)
    with pytest.raises(ValueError, match="outside"):
        type(index)(**{**index.__dict__, "n_items": 2})


def test_fusion_normalises_each_half_per_query():
    lex = np.array([[0.0, 2.0, 1.0], [0.0, 0.0, 0.0]], np.float32)
    sem = np.array([[0.5, -0.5, 0.0], [0.1, 0.3, 0.2]], np.float32)
    got = fuse_scores(lex, sem, 0.25)
    np.testing.assert_allclose(got[0], 0.25 * np.array([0, 1, 0.5]) + 0.75 * np.array([1, 0, 0.5]))
    np.testing.assert_allclose(got[1], 0.75 * np.array([0, 1, 0.5]))  # no lexical match
    np.testing.assert_allclose(fuse_scores(lex[0], sem[0], 0.25), got[0])  # one query: 1-D


def test_inner_products_match_numpy():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((300, 24)).astype(np.float32)
    q = rng.standard_normal(24).astype(np.float32)
    np.testing.assert_allclose(inner_products(items, q), items @ q, atol=1e-4)
    with pytest.raises(ValueError, match="do not match"):
        inner_products(items, q[:5])
