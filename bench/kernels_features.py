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
from kernels.feature_spec import SOURCES, TRANSFORMS

__all__ = ["feature_case", "feature_inputs", "numpy_assemble", "numpy_case"]


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


FeatureInputs = tuple[
    FeatureSpec,
    FeatureTables,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
]


def feature_inputs(n_items: int, n_candidates: int = 500) -> FeatureInputs:
    """(spec, tables, user, cptr, cands, rptr, recent, ages) of the benchmark's one query."""
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
    user = np.array([12345])
    cptr = np.array([0, n_candidates])
    cands = rng.integers(0, n_items, n_candidates)
    rptr = np.array([0, 50])
    recent = rng.integers(0, n_items, 50)
    ages = rng.uniform(0, 7 * 86400, 50).astype(np.float32)
    return _spec(), tables, user, cptr, cands, rptr, recent, ages


def feature_case(n_items: int) -> Callable[[], np.ndarray]:
    """A call of `assemble_features` on the benchmark's inputs into a preallocated output."""
    spec, tables, user, cptr, cands, rptr, recent, ages = feature_inputs(n_items)
    out = np.empty((cands.shape[0], spec.n_features), np.float32)
    return lambda: assemble_features(spec, tables, user, cptr, cands, rptr, recent, ages, out)


def numpy_case(n_items: int) -> Callable[[], np.ndarray]:
    """The same inputs through `numpy_assemble`."""
    inputs = feature_inputs(n_items)
    return lambda: numpy_assemble(*inputs)


_SPLITMIX = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xBF58476D1CE4E5B9),
    np.uint64(0x94D049BB133111EB),
)


def _recent_sums(keys: np.ndarray, rkeys: np.ndarray, w: np.ndarray) -> np.ndarray:
    """[n_candidates, n_features]: per candidate key, the summed weights w [n_recent,
    n_features] of the recent interactions with the same key (an equality matrix product)."""
    return (keys[:, None] == rkeys[None, :]).astype(np.float32) @ w


def _hash_cross(a: np.ndarray, cat: np.ndarray, n_buckets: np.ndarray) -> np.ndarray:
    """The kernel's splitmix64 bucket of (a[f], cat[c]) as float32 [n_candidates, n_features]."""
    m1, m2, m3 = _SPLITMIX
    x = (a.astype(np.uint64)[None, :] * m1) ^ cat.astype(np.uint64)[:, None]
    x = (x ^ (x >> np.uint64(30))) * m2
    x = (x ^ (x >> np.uint64(27))) * m3
    x ^= x >> np.uint64(31)
    return (x % n_buckets.astype(np.uint64)[None, :]).astype(np.float32)


def _numpy_query(
    spec: FeatureSpec, t: FeatureTables, u: int, ids: np.ndarray, rids: np.ndarray, ages: np.ndarray
) -> np.ndarray:
    """The raw (untransformed) features of one query's candidates, whole-array ops per kind."""
    cs = spec.compiled
    src, col, col2 = cs.source, cs.column, cs.column2
    out = np.empty((ids.shape[0], spec.n_features), np.float32)
    cat = t.item_category[ids]
    f = np.flatnonzero(src == SOURCES.index("user"))
    out[:, f] = t.user_features[u, col[f]][None, :]
    f = np.flatnonzero(src == SOURCES.index("item"))
    out[:, f] = t.item_features[ids[:, None], col[f][None, :]]
    f = np.flatnonzero(src == SOURCES.index("affinity"))
    keys = t.affinity_category[t.affinity_indptr[u] : t.affinity_indptr[u + 1]]
    vals = t.affinity_value[t.affinity_indptr[u] : t.affinity_indptr[u + 1]]
    p = np.minimum(np.searchsorted(keys, cat), max(keys.shape[0] - 1, 0))
    aff = np.where(keys[p] == cat, vals[p], 0.0) if keys.shape[0] else np.zeros(cat.shape)
    out[:, f] = aff.astype(np.float32)[:, None]
    f = np.flatnonzero(src == SOURCES.index("price_ratio"))
    mean = t.user_features[u, col2[f]]
    ratio = t.item_features[ids[:, None], col[f][None, :]] / np.where(mean > 0, mean, 1)[None, :]
    out[:, f] = np.where(mean[None, :] > 0, ratio, np.float32(0.0))
    for kind, keys_c, rkeys in (
        ("recent_item", ids, rids),
        ("recent_category", cat, t.item_category[rids]),
    ):
        f = np.flatnonzero(src == SOURCES.index(kind))
        rate = np.log(2.0) / cs.param[f]
        w = np.exp(-ages.astype(np.float64)[:, None] * rate[None, :]).astype(np.float32)
        out[:, f] = _recent_sums(keys_c, rkeys, w)
    f = np.flatnonzero(src == SOURCES.index("hash_cross"))
    a = t.user_features[u, col[f]].astype(np.int64)
    out[:, f] = _hash_cross(a, cat, cs.param[f].astype(np.int64))
    return out


def numpy_assemble(
    spec: FeatureSpec,
    tables: FeatureTables,
    user: np.ndarray,
    cptr: np.ndarray,
    cands: np.ndarray,
    rptr: np.ndarray,
    recent: np.ndarray,
    ages: np.ndarray,
) -> np.ndarray:
    """`assemble_features` written as whole-array numpy (the benchmark's baseline): per query,
    one gather / lookup / product per feature kind over all its candidates and features; then
    log1p over all log1p columns at once and one searchsorted per bucketized feature. No loop
    over candidates; the loop over queries is the batch (one query in the benchmark)."""
    cs = spec.compiled
    out = np.empty((cands.shape[0], spec.n_features), np.float32)
    for q, u in enumerate(user):
        c, r = slice(cptr[q], cptr[q + 1]), slice(rptr[q], rptr[q + 1])
        out[c] = _numpy_query(spec, tables, int(u), cands[c], recent[r], ages[r])
    f = np.flatnonzero(cs.transform == TRANSFORMS.index("log1p"))
    out[:, f] = np.log1p(np.maximum(out[:, f], np.float32(0.0)))
    for j in np.flatnonzero(cs.transform == TRANSFORMS.index("bucketize")):
        edges = cs.bnd_values[cs.bnd_indptr[j] : cs.bnd_indptr[j + 1]]
        out[:, j] = np.searchsorted(edges, out[:, j], side="right")
    return out
