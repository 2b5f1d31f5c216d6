"""The exactly fitted review heads: the sparse bag the regressions are fitted on is what the
graph's `Lexical` computes, and the torch head carries the stacked regressions' logits."""

from __future__ import annotations

import numpy as np
import torch

from export.text_heads import BETAS, EMB_C, StackedParts, fit_bag, fit_stack, probabilities
from export.text_lexical import Lexical, bag_matrix, fit_idf


def _ids(rng: np.random.Generator, n: int, t: int = 12) -> np.ndarray:
    ids = rng.integers(1000, 1040, size=(n, t))
    ids[:, :2] = rng.integers(
        1000, 1040, size=(n, 2)
    )  # never padding  # a small vocabulary: features repeat
    lens = rng.integers(3, t + 1, size=n)  # the first two tokens always present
    ids[np.arange(t)[None, :] >= lens[:, None]] = 0
    return ids


def test_the_bag_matrix_is_what_the_graph_computes() -> None:
    rng = np.random.default_rng(0)
    ids = _ids(rng, 64)
    idf = fit_idf(ids)
    lex = Lexical(idf, 3)
    with torch.no_grad():
        lex.table.weight.normal_()
        got = lex(torch.tensor(ids)).numpy()
    want = bag_matrix(ids, idf) @ lex.table.weight.detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_the_stacked_head_has_the_regressions_logits_and_choices_on_validation() -> None:
    rng = np.random.default_rng(1)
    ids = {s: _ids(rng, n) for s, n in (("train", 300), ("valid", 100))}
    y = {s: rng.integers(0, 3, len(v)) for s, v in ids.items()}
    for s, v in ids.items():
        v[:, 1] = 2000 + y[s]  # a marker token per class: learnable from the bag
    y["train"][:5] = -1  # unlabelled rows are left out
    pooled = {s: rng.normal(size=(len(v), 8)).astype(np.float32) for s, v in ids.items()}
    idf = fit_idf(ids["train"])
    bag = {s: bag_matrix(v, idf) for s, v in ids.items()}
    part, c, tried = fit_bag(bag, y, 3)
    assert len(tried) == 3 and f"C={c:g}" in tried
    fit = fit_stack(StackedParts(part, c, bag, pooled, y, 3), idf)
    assert fit.choice["beta"] in BETAS and fit.choice["embedding_C"] in EMB_C
    assert fit.valid_f1 == max(fit.tried.values()) and fit.valid_f1 > 0.9
    with torch.no_grad():
        torch_logits = fit.head(torch.tensor(ids["valid"]), torch.tensor(pooled["valid"]))
    p = probabilities(fit, bag["valid"], pooled["valid"], temperature=1.0)
    np.testing.assert_allclose(torch.softmax(torch_logits, 1).numpy(), p, atol=1e-5)


def test_soft_targets_fit_a_binary_head_with_two_logits() -> None:
    rng = np.random.default_rng(2)
    ids = {s: _ids(rng, n) for s, n in (("train", 200), ("valid", 80))}
    y = {s: rng.integers(0, 2, len(v)) for s, v in ids.items()}
    for s, v in ids.items():
        v[:, 1] = 2000 + y[s]
    pooled = {s: rng.normal(size=(len(v), 4)).astype(np.float32) for s, v in ids.items()}
    idf = fit_idf(ids["train"])
    bag = {s: bag_matrix(v, idf) for s, v in ids.items()}
    part, c, _ = fit_bag(bag, y, 2)
    parts = StackedParts(part, c, bag, pooled, y, 2)
    soft = probabilities(fit_stack(parts, idf), bag["train"], pooled["train"])
    fit = fit_stack(parts, idf, soft, 0.5)
    assert fit.alpha == 0.5 and fit.head.dense.weight.shape == (2, 4)
    assert fit.head.lexical.table.weight[:, 0].abs().max() == 0  # class 0's logit is the bias


def test_fitting_on_the_active_columns_is_the_full_fit() -> None:
    """The bag's regression is solved on the columns some training row touches (a few percent of
    the 555k): the weights equal a fit over every column, and the rest are exactly zero."""
    from sklearn.linear_model import LogisticRegression

    from export.text_heads import _fit

    rng = np.random.default_rng(3)
    ids = _ids(rng, 240)
    y = rng.integers(0, 3, len(ids))
    ids[:, 1] = 2000 + y
    x = bag_matrix(ids, fit_idf(ids))
    part = _fit(x, y, 3, 4.0, None, 0.0, 1e-8)
    cw = 240 / (3 * np.bincount(y, minlength=3))
    full = LogisticRegression(C=4.0, max_iter=5000, tol=1e-8).fit(x, y, sample_weight=cw[y])
    # the same optimum, to the solvers' stopping rule (L-BFGS stops on relative loss change too)
    np.testing.assert_allclose(part.w, full.coef_, atol=2e-3)
    np.testing.assert_allclose(part.b, full.intercept_, atol=2e-3)
    assert np.array_equal(part.logits(x).argmax(1), full.predict(x))
    untouched = x.getnnz(axis=0) == 0
    assert untouched.sum() > 500_000 and np.all(part.w[:, untouched] == 0)
