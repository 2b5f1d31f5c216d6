"""The intent heads: multinomial logistic regressions over unit query embeddings, fitted exactly
(scikit-learn lbfgs), trained on the corpus texts (knowledge-base texts only) labelled with
their entry's intent, C chosen on the validation questions' intent accuracy.

- teacher: on the teacher's embeddings, hard labels;
- student: on the query student's embeddings of the same texts, distilled from the teacher's
  probabilities: targets (1 - alpha) one-hot + alpha teacher, fitted as in `text_heads` by
  giving every text one row per class, weighted by that class's target (rows under
  `MIN_TARGET` left out: they change little, and the fit's time grows with the rows);
- baseline: on TF-IDF features of the same texts (`tfidf_features`).

A head is `logits = x @ w.T + b` ([n_intents, d], [n_intents]): the served pipeline applies it
to the query embedding in numpy (`intent_weights.npy`, `intent_bias.npy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IntentHead", "fit_head", "softmax", "tfidf_features"]

MIN_TARGET = 0.02  # soft-target rows under this are left out: they change little and cost most


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


@dataclass
class IntentHead:
    w: np.ndarray  # float32 [n_intents, d]
    b: np.ndarray  # float32 [n_intents]
    c: float
    alpha: float
    valid_accuracy: float
    tried: dict

    def probs(self, x) -> np.ndarray:
        return softmax(np.asarray(x @ self.w.T) + self.b)


def _fit(x, y: np.ndarray, n: int, c: float, soft: np.ndarray | None, alpha: float):
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=1000, tol=1e-4)
    if soft is None or alpha == 0:
        lr.fit(x, y)
    else:
        target = (1 - alpha) * np.eye(n)[y] + alpha * soft
        rows, cls = np.nonzero(target >= MIN_TARGET)
        xs = x[rows] if sparse.issparse(x) else np.asarray(x)[rows]
        lr.fit(xs, cls, sample_weight=target[rows, cls])
    if list(lr.classes_) != list(range(n)):
        raise ValueError(f"the training texts cover intents {list(lr.classes_)} of {n}")
    return lr.coef_.astype(np.float32), lr.intercept_.astype(np.float32)


def fit_head(
    x_train,
    y_train: np.ndarray,
    x_valid,
    y_valid: np.ndarray,
    n: int,
    cs: tuple[float, ...],
    soft: np.ndarray | None = None,
    alphas: tuple[float, ...] = (0.0,),
) -> IntentHead:
    """The head of best validation intent accuracy (in-scope questions: y_valid >= 0) over
    `cs` x `alphas`; ties go to the first tried."""
    inn = y_valid >= 0
    best, tried = None, {}
    for alpha in alphas if soft is not None else (0.0,):
        for c in cs:
            w, b = _fit(x_train, y_train, n, c, soft, alpha)
            logits = np.asarray(x_valid[inn] @ w.T) + b
            acc = float((logits.argmax(1) == y_valid[inn]).mean())
            tried[f"C={c:g}, alpha={alpha:g}"] = round(acc, 4)
            if best is None or acc > best[0]:
                best = (acc, w, b, c, alpha)
    assert best is not None
    acc, w, b, c, alpha = best
    return IntentHead(w, b, c, alpha, round(acc, 4), tried)


def tfidf_features(train: list[str]):
    """The baseline's features: TF-IDF of character 2-4 grams (in words) and of words, each
    L2-normalised, side by side and scaled so a row is unit length (a cosine is a dot product).
    Returns `transform(texts) -> sparse [n, terms]`, fitted on `train`."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit(train)
    word = TfidfVectorizer(analyzer="word", sublinear_tf=True).fit(train)

    def transform(texts: list[str]):
        both = sparse.hstack([char.transform(texts), word.transform(texts)]).tocsr()
        return both * np.float32(1 / np.sqrt(2))

    return transform
