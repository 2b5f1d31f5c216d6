from __future__ import annotations

import numpy as np

from export.data import load_reviews, load_shoppers
from export.synthetic import generate


def test_cleaning_rules_are_counted():
    for load in (load_reviews, load_shoppers):
        df, rep = load()
        assert rep.steps, "every loader applies written-down rules"
        left = rep.rows_in
        for _rule, dropped, n in rep.steps:
            assert left - dropped == n
            left = n
        assert len(df) == rep.rows_out


def test_reviews_labels():
    df, _ = load_reviews()
    assert set(df["sentiment"].unique()) == {0, 1, 2}
    assert (df["text"].str.strip() != "").all()
    assert set(df["recommended"].unique()) == {0, 1}


def test_synthetic_is_deterministic_and_bounded():
    a = generate(5000, 300, dim=8, n_categories=10, seed=3)
    b = generate(5000, 300, dim=8, n_categories=10, seed=3)
    assert np.array_equal(a.history, b.history)
    assert a.history.min() >= 0 and a.history.max() < 5000
    assert a.user_indptr[-1] == len(a.history) and len(a.user_indptr) == 301
    assert np.allclose(np.linalg.norm(a.item_embeddings, axis=1), 1.0, atol=1e-5)
    c = generate(5000, 300, dim=8, n_categories=10, seed=4)
    assert not np.array_equal(a.history, c.history)
