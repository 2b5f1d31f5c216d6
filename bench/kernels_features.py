"""The feature-assembly case the kernel benchmark times: 64 features, 500 candidates.

A plausible ranker spec: 16 user columns, 24 item columns (8 with log1p, 8 bucketized: prices,
popularity, counts), 4 category affinities, 4 price ratios, 4 recent-item and 8 recent-category
decayed counts (half-lives 1 min to 1 week), 4 hashed user x category crosses; one query with 50
recent interactions; tables of 100k users and `n_items` items in 1,000 categories (seed 7).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kernels import Feature, FeatureSpec, FeatureTables, assemble_features

__all__ = ["feature_case"]


def _spec() -> FeatureSpec:
    f: list[Feature] = []
    f += [Feature(f"user_{c}", "user", column=c) for c in range(16)]
    f += [Feature(f"item_{c}", "item", column=c) for c in range(8)]
    f += [Feature(f"item_log_{c}", "item", column=8 + c, transform="log1p") for c in range(8)]
    edges = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
    f += [
        Feature(f"item_bucket_{c}", "item", column=c, transform="bucketize", boundaries=edges)
        for c in range(8)
    ]
    f += [
        Feature(f"affinity_{c}", "affinity", transform="log1p" if c else "identity")
        for c in range(4)
    ]
    f += [Feature(f"price_ratio_{c}", "price_ratio", column=c, column2=c) for c in range(4)]
    lives = (60.0, 3600.0, 86400.0, 604800.0)
    f += [Feature(f"recent_item_{h:g}", "recent_item", half_life_s=h) for h in lives]
    f += [Feature(f"recent_cat_{h:g}", "recent_category", half_life_s=h) for h in lives]
    f += [
        Feature(f"recent_cat_log_{h:g}", "recent_category", half_life_s=h, transform="log1p")
        for h in lives
    ]
    f += [Feature(f"cross_{c}", "hash_cross", column=c, n_buckets=4096) for c in range(4)]
    assert len(f) == 64
    return FeatureSpec(tuple(f))


def feature_case(n_items: int) -> Callable[[], np.ndarray]:
    rng = np.random.default_rng(7)
    n_users, n_cats = 100_000, 1000
    aff_n = rng.integers(0, 30, n_users)
    aff_cat = np.concatenate([np.sort(rng.choice(n_cats, n, replace=False)) for n in aff_n])
    tables = FeatureTables(
        rng.integers(0, 50, (n_users, 16)).astype(np.float32),
        rng.gamma(2.0, 1.0, (n_items, 16)).astype(np.float32),
        rng.integers(0, n_cats, n_items),
        np.concatenate([[0], np.cumsum(aff_n)]),
        aff_cat,
        rng.random(len(aff_cat)).astype(np.float32),
    )
    spec = _spec()
    user = np.array([12345])
    cptr = np.array([0, 500])
    cands = rng.integers(0, n_items, 500)
    rptr = np.array([0, 50])
    recent = rng.integers(0, n_items, 50)
    ages = rng.uniform(0, 7 * 86400, 50).astype(np.float32)
    out = np.empty((500, spec.n_features), np.float32)
    return lambda: assemble_features(spec, tables, user, cptr, cands, rptr, recent, ages, out)
