"""The review heads, fitted exactly: logistic regressions over what the served graph computes.

A head's logits are `bag(ids) @ W_bag + beta * (z(pooled) @ W_emb) + b` (`TaskHead`): the lexical
TF-IDF bag of `text_lexical` (built here as the sparse matrix the graph's `Lexical` computes) and
the standardised sentence embedding of the encoder's pooled layer. Each part is a class-balanced
logistic regression (scikit-learn, convex, solved to a tolerance rather than trained for a CPU
budget), and the parts are stacked with a weight `beta`. Every choice is made on validation
macro-F1: the bag's C, the embedding part's C and soft-target weight, and `beta`. The fitted
weights are copied into the torch `TaskHead`, which the ONNX export and the checks then use.

Why not gradient descent on the whole head, as round 2 did: the bag has 555k features; in its
45-CPU-second budget Adam left the bag under-fitted, and every head scored below TF-IDF + LR on
the same rows (sentiment 0.6498 against 0.6550, department 0.5988 against 0.6567, test macro-F1).

Distillation (the student's embedding part): the teacher's stacked probabilities at temperature
`TEMPERATURE` replace a share `alpha` of the labels. Multinomial logistic regression with soft
targets is fitted exactly by giving every review one row per class, weighted by that class's
target probability times its balancing weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from export.text_lexical import Lexical
from export.text_metrics import macro_f1
from export.text_models import TaskHead

__all__ = [
    "BAG_C",
    "BETAS",
    "EMB_C",
    "HeadFit",
    "StackedParts",
    "fit_bag",
    "fit_stack",
    "probabilities",
]

BAG_C = (1.0, 4.0, 16.0)  # the bag's inverse regularisation, chosen on validation
EMB_C = (0.01, 0.1, 1.0)  # the embedding part's
BETAS = (0.03, 0.1, 0.3, 1.0)  # the embedding part's weight in the stack (0 would drop the encoder)
TEMPERATURE = 2.0  # of the teacher's soft targets


@dataclass
class Linear:
    """A fitted part: logits = x @ w.T + b, [n_classes] wide even for two classes."""

    w: np.ndarray  # [n_classes, d]
    b: np.ndarray  # [n_classes]

    def logits(self, x) -> np.ndarray:
        return np.asarray(x @ self.w.T) + self.b


@dataclass
class HeadFit:
    """One task's head and what choosing it measured (validation macro-F1 of every try)."""

    head: TaskHead
    valid_f1: float
    alpha: float
    choice: dict  # bag C, embedding C, beta
    tried: dict = field(default_factory=dict)


def _balanced(y: np.ndarray, n: int) -> np.ndarray:
    cnt = np.bincount(y, minlength=n).clip(min=1)
    return cnt.sum() / (n * cnt)


def _fit(x, y: np.ndarray, n: int, c: float, soft: np.ndarray | None, alpha: float, tol: float):
    """Class-balanced multinomial (or binary) logistic regression; with `soft` [rows, n] the
    targets are (1 - alpha) * one-hot(y) + alpha * soft, by replicating rows per class."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    cw = _balanced(y, n)
    d = x.shape[1]
    active = None
    if sparse.issparse(x):  # see `_active_columns`
        active, x = _active_columns(x)
    lr = LogisticRegression(C=c, max_iter=2000, tol=tol)
    if soft is None or alpha == 0:
        lr.fit(x, y, sample_weight=cw[y])
    else:
        target = (1 - alpha) * np.eye(n)[y] + alpha * soft
        rows = np.repeat(np.arange(len(y)), n)
        cls = np.tile(np.arange(n), len(y))
        xs = x[rows] if sparse.issparse(x) else np.asarray(x)[rows]
        lr.fit(xs, cls, sample_weight=target.ravel() * cw[cls])
    w, b = lr.coef_, lr.intercept_
    if active is not None:
        w = _scatter_columns(w, active, d)
    if n == 2:  # sklearn's binary model: one row, the positive class's score
        w, b = np.vstack([np.zeros_like(w), w]), np.array([0.0, b[0]])
    return Linear(w.astype(np.float32), b.astype(np.float32))


def _active_columns(x):
    """(the columns with a non-zero, x restricted to them). The bag has 555k columns, of which a
    training set touches a few percent (1,680 preview reviews: 11.6k). An L2-regularised logistic
    regression gives a column that is zero in every row a zero weight, and L-BFGS started at zero
    never moves it (its gradient is the penalty's, 0 there), so fitting on the active columns is
    the same fit; the solver's per-iteration cost, linear in the columns, drops 30-50x."""
    xc = x.tocsc()
    active = np.flatnonzero(xc.getnnz(axis=0) > 0)
    return active, xc[:, active].tocsr()


def _scatter_columns(w: np.ndarray, active: np.ndarray, d: int) -> np.ndarray:
    out = np.zeros((w.shape[0], d), w.dtype)
    out[:, active] = w
    return out


def _f1(y: np.ndarray, logits: np.ndarray) -> float:
    return macro_f1(y, logits.argmax(1))["macro_f1"]


def fit_bag(bag: dict, y: dict, n: int) -> tuple[Linear, float, dict]:
    """The bag part: C of best validation macro-F1 among `BAG_C` (labelled rows only)."""
    tr, va = y["train"] >= 0, y["valid"] >= 0
    best, tried = None, {}
    for c in BAG_C:  # the tolerance of the TF-IDF baseline: the same care, the same solver
        part = _fit(bag["train"][tr], y["train"][tr], n, c, None, 0.0, 1e-3)
        tried[f"C={c:g}"] = f = _f1(y["valid"][va], part.logits(bag["valid"][va]))
        if best is None or f > best[1]:
            best = (part, f, c)
    assert best is not None
    return best[0], best[2], tried


@dataclass
class StackedParts:
    """What a head stacks: the fitted bag part and the pooled embeddings [n, d] per split."""

    bag_part: Linear
    bag_c: float
    bag: dict  # split -> sparse bag matrix
    pooled: dict  # split -> [n, d]
    y: dict  # split -> labels (-1: none)
    n: int


def fit_stack(
    parts: StackedParts, idf: np.ndarray, soft: np.ndarray | None = None, alpha: float = 0.0
) -> HeadFit:
    """The embedding part (C among `EMB_C`) and its weight `beta` (among `BETAS`), on validation
    macro-F1, over the fixed bag part; `soft` [train rows, n]: the teacher's probabilities."""
    y, n = parts.y, parts.n
    tr, va = y["train"] >= 0, y["valid"] >= 0
    p = parts.pooled
    mean, std = p["train"].mean(0), p["train"].std(0) + 1e-6
    z = {s: (p[s] - mean) / std for s in ("train", "valid")}
    l_bag = parts.bag_part.logits(parts.bag["valid"][va])
    best, tried = None, {}
    for c in EMB_C:
        s_tr = soft[tr] if soft is not None else None
        part = _fit(z["train"][tr], y["train"][tr], n, c, s_tr, alpha, 1e-4)
        l_emb = part.logits(z["valid"][va])
        for beta in BETAS:
            tried[f"C={c:g}, beta={beta:g}"] = f = _f1(y["valid"][va], l_bag + beta * l_emb)
            if best is None or f > best[0]:
                best = (f, part, c, beta)
    assert best is not None
    f, part, c, beta = best
    head = TaskHead(Lexical(idf, n), torch.tensor(mean), torch.tensor(std), n)
    with torch.no_grad():
        head.lexical.table.weight.copy_(torch.tensor(parts.bag_part.w.T))
        head.dense.weight.copy_(torch.tensor(beta * part.w))
        head.dense.bias.copy_(torch.tensor(parts.bag_part.b + beta * part.b))
    choice = {"bag_C": parts.bag_c, "embedding_C": c, "beta": beta}
    return HeadFit(head.eval(), f, alpha, choice, tried)


def probabilities(fit: HeadFit, bag, pooled: np.ndarray, temperature: float = TEMPERATURE):
    """A head's class probabilities at `temperature` from the matrices it was fitted on."""
    h = fit.head
    w = h.lexical.table.weight.detach().numpy()
    z = (pooled - h.mean.numpy()) / h.std.numpy()
    dense_w, dense_b = h.dense.weight.detach().numpy(), h.dense.bias.detach().numpy()
    logits = np.asarray(bag @ w) + z @ dense_w.T + dense_b
    e = np.exp((logits - logits.max(1, keepdims=True)) / temperature)
    return e / e.sum(1, keepdims=True)
