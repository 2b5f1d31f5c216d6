"""The baseline row of the text cards: TF-IDF + logistic regression, given the care the students
get (word 1-2 grams, optionally character 2-5 grams, balanced class weights, C and the features
chosen on validation macro-F1), trained on the same labelled training reviews as the heads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.card import Row
from export.text_data import TextData
from export.text_metrics import macro_f1

__all__ = ["BASELINE_C", "Baseline", "choose_baseline", "classify_baseline_row"]

BASELINE_C = (0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass
class Baseline:
    features: str  # "word 1-2" or "word 1-2 + char 2-5"
    c: float
    valid: dict[str, float]  # macro-F1 on validation of every (features, C) tried
    model: object
    vectorizers: list


def _vectorizers(features: str) -> list:
    from sklearn.feature_extraction.text import TfidfVectorizer

    out = [TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)]
    if "char" in features:
        out.append(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=3, sublinear_tf=True)
        )
    return out


def _matrix(vecs: list, texts: np.ndarray, fit: bool = False):
    from scipy.sparse import hstack

    parts = [v.fit_transform(texts) if fit else v.transform(texts) for v in vecs]
    return hstack(parts).tocsr()


def choose_baseline(
    train_x: np.ndarray,
    train_y: np.ndarray,
    valid_x: np.ndarray,
    valid_y: np.ndarray,
    feature_sets: tuple[str, ...] = ("word 1-2",),
    cs: tuple[float, ...] = BASELINE_C,
) -> Baseline:
    """The (features, C) of best validation macro-F1, fitted on the training rows only; rows
    with label -1 are left out of both."""
    from sklearn.linear_model import LogisticRegression

    tr, va = train_y >= 0, valid_y >= 0
    best, tried = None, {}
    for features in feature_sets:
        vecs = _vectorizers(features)
        xtr = _matrix(vecs, train_x[tr], fit=True)
        xva = _matrix(vecs, valid_x[va])
        for c in cs:  # no warm start: at this tolerance it stops at the previous C's solution
            lr = LogisticRegression(C=c, class_weight="balanced", max_iter=1000, tol=1e-3)
            lr.fit(xtr, train_y[tr])
            f1 = macro_f1(valid_y[va], lr.predict(xva))["macro_f1"]
            tried[f"{features}, C={c:g}"] = f1
            if best is None or f1 > best[0]:
                best = (f1, features, c, lr, vecs)
    assert best is not None
    _, features, c, lr, vecs = best
    return Baseline(features, c, tried, lr, vecs)


def classify_baseline_row(data: TextData, task: str, feature_sets: tuple[str, ...]) -> Row:
    """The baseline's row: chosen on validation, then scored once on test."""
    b = choose_baseline(
        data.split_texts("train"),
        data.y(task, "train"),
        data.split_texts("valid"),
        data.y(task, "valid"),
        feature_sets,
    )
    y = data.y(task, "test")
    m = macro_f1(y, b.model.predict(_matrix(b.vectorizers, data.split_texts("test"))))
    return Row(
        "baseline",
        m["macro_f1"],
        m,
        params=int(b.model.coef_.size),
        note=f"TF-IDF {b.features} + LR (balanced), C={b.c:g} on validation",
        valid_metric=b.valid[f"{b.features}, C={b.c:g}"],
        runtime="sklearn",
    )
