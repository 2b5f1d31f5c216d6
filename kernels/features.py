"""Feature assembly: one dense float32 row per (query, candidate) from a `FeatureSpec`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .feature_spec import CompiledSpec, Feature, FeatureSpec

__all__ = ["Feature", "FeatureSpec", "FeatureTables", "assemble_features"]

_LN2 = np.log(2.0)
# Above this many candidates per call, queries are spread over threads (training-time calls);
# a request's few hundred candidates run on the calling thread: waking threads costs more.
PARALLEL_MIN_CANDIDATES = 20_000
_ERRORS = {-1: "user_ids", -2: "candidate_ids", -3: "recent_item_ids"}


@dataclass(frozen=True, eq=False)
class FeatureTables:
    """user_features float32 [n_users, u_cols]; item_features float32 [n_items, i_cols];
    item_category int64 [n_items]; affinity CSR over users: affinity_indptr int64 [n_users + 1],
    affinity_category int64 (sorted within each user), affinity_value float32."""

    user_features: np.ndarray
    item_features: np.ndarray
    item_category: np.ndarray
    affinity_indptr: np.ndarray
    affinity_category: np.ndarray
    affinity_value: np.ndarray

    def __post_init__(self) -> None:
        u = np.ascontiguousarray(self.user_features, np.float32)
        i = np.ascontiguousarray(self.item_features, np.float32)
        if u.ndim != 2 or i.ndim != 2:
            raise ValueError("user_features, item_features: expected 2-D arrays")
        cat = np.ascontiguousarray(self.item_category, np.int64)
        if cat.shape != (i.shape[0],):
            raise ValueError(f"item_category: expected int [{i.shape[0]}]")
        ptr = np.ascontiguousarray(self.affinity_indptr, np.int64)
        acat = np.ascontiguousarray(self.affinity_category, np.int64)
        aval = np.ascontiguousarray(self.affinity_value, np.float32)
        if ptr.shape != (u.shape[0] + 1,) or ptr[0] != 0 or ptr[-1] != acat.shape[0]:
            raise ValueError(f"affinity_indptr: expected CSR indptr [{u.shape[0] + 1}]")
        if acat.shape != aval.shape or (np.diff(ptr) < 0).any():
            raise ValueError("affinity_category, affinity_value: expected equal lengths")
        within = np.ones(acat.shape[0], bool)
        within[ptr[1:-1][ptr[1:-1] < acat.shape[0]]] = False
        if (np.diff(acat) <= 0)[within[1:]].any():
            raise ValueError("affinity_category: must be strictly increasing within each user")
        for name, a in (("user_features", u), ("item_features", i), ("affinity_value", aval)):
            if not np.isfinite(a).all():
                raise ValueError(f"{name}: contains NaN or infinite values")
        for name, a in (("user_features", u), ("item_features", i), ("item_category", cat)):
            object.__setattr__(self, name, a)
        object.__setattr__(self, "affinity_indptr", ptr)
        object.__setattr__(self, "affinity_category", acat)
        object.__setattr__(self, "affinity_value", aval)


@njit(inline="always", nogil=True, cache=True)
def _lower_bound(keys, lo, hi, key):  # type: ignore[no-untyped-def]
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(inline="always", nogil=True, cache=True)
def _hash_bucket(a, b, n_buckets):  # type: ignore[no-untyped-def]
    # splitmix64 finaliser over a combined key: stable across runs, platforms and languages
    x = np.uint64(a) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(b)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return np.float32(x % np.uint64(n_buckets))


def _assemble_py(  # type: ignore[no-untyped-def]
    source,
    column,
    column2,
    param,
    transform,
    recent_slot,
    bnd_indptr,
    bnd_values,
    n_slots,
    user_f,
    item_f,
    item_cat,
    aff_ptr,
    aff_cat,
    aff_val,
    user_ids,
    cand_indptr,
    cand_ids,
    recent_indptr,
    recent_ids,
    recent_age_s,
    out,
):
    """Kernel body; returns 0, or -1/-2/-3 for an out-of-range user / candidate / recent id.

    One pass per (query, feature) over that query's candidates: the source switch sits outside
    the candidate loop. Recent interactions are sorted per query by key (item or category) with
    their decayed weights, so each candidate costs one binary search per recent feature.
    """
    n_users = user_f.shape[0]
    n_items = item_f.shape[0]
    n_feat = source.shape[0]
    b = user_ids.shape[0]
    status = np.zeros(b, np.int64)
    for q in prange(b):
        u = user_ids[q]
        c0 = cand_indptr[q]
        c1 = cand_indptr[q + 1]
        r0 = recent_indptr[q]
        n_rec = recent_indptr[q + 1] - r0
        bad = u < 0 or u >= n_users
        for c in range(c0, c1):
            if cand_ids[c] < 0 or cand_ids[c] >= n_items:
                bad = True
        for j in range(n_rec):
            if recent_ids[r0 + j] < 0 or recent_ids[r0 + j] >= n_items:
                bad = True
        if bad:
            status[q] = -1 if (u < 0 or u >= n_users) else -2
            for j in range(n_rec):
                if recent_ids[r0 + j] < 0 or recent_ids[r0 + j] >= n_items:
                    status[q] = -3
            continue
        keys = np.empty((max(n_slots, 1), n_rec), np.int64)
        wts = np.empty((max(n_slots, 1), n_rec), np.float32)
        for f in range(n_feat):
            s = recent_slot[f]
            if s < 0:
                continue
            by_cat = source[f] == 5
            rate = _LN2 / param[f]
            for j in range(n_rec):
                key = recent_ids[r0 + j]
                if by_cat:
                    key = item_cat[key]
                w = np.float32(np.exp(-recent_age_s[r0 + j] * rate))
                # insertion sort: a user's recent list is short (tens)
                p = j
                while p > 0 and keys[s, p - 1] > key:
                    keys[s, p] = keys[s, p - 1]
                    wts[s, p] = wts[s, p - 1]
                    p -= 1
                keys[s, p] = key
                wts[s, p] = w
        a_lo = aff_ptr[u]
        a_hi = aff_ptr[u + 1]
        for f in range(n_feat):
            src = source[f]
            col = column[f]
            if src == 0:
                v = user_f[u, col]
                for c in range(c0, c1):
                    out[c, f] = v
            elif src == 1:
                for c in range(c0, c1):
                    out[c, f] = item_f[cand_ids[c], col]
            elif src == 2:
                for c in range(c0, c1):
                    cat = item_cat[cand_ids[c]]
                    p = _lower_bound(aff_cat, a_lo, a_hi, cat)
                    out[c, f] = aff_val[p] if p < a_hi and aff_cat[p] == cat else 0.0
            elif src == 3:
                mean = user_f[u, column2[f]]
                for c in range(c0, c1):
                    out[c, f] = item_f[cand_ids[c], col] / mean if mean > 0 else 0.0
            elif src == 4 or src == 5:
                s = recent_slot[f]
                for c in range(c0, c1):
                    key = cand_ids[c] if src == 4 else item_cat[cand_ids[c]]
                    p = _lower_bound(keys[s], 0, n_rec, key)
                    acc = np.float32(0.0)
                    while p < n_rec and keys[s, p] == key:
                        acc += wts[s, p]
                        p += 1
                    out[c, f] = acc
            else:
                a = np.int64(user_f[u, col])
                nb = np.int64(param[f])
                for c in range(c0, c1):
                    out[c, f] = _hash_bucket(a, item_cat[cand_ids[c]], nb)
            t = transform[f]
            if t == 1:
                for c in range(c0, c1):
                    out[c, f] = np.log1p(max(out[c, f], np.float32(0.0)))
            elif t == 2:
                e0 = bnd_indptr[f]
                e1 = bnd_indptr[f + 1]
                for c in range(c0, c1):
                    x = out[c, f]
                    n_le = 0
                    for e in range(e0, e1):
                        n_le += bnd_values[e] <= x
                    out[c, f] = n_le
    return status.min() if b > 0 else 0


_assemble_serial = njit(nogil=True, cache=True)(_assemble_py)
_assemble_parallel = njit(nogil=True, cache=True, parallel=True)(_assemble_py)


def _csr(name: str, indptr: np.ndarray, n_rows: int) -> np.ndarray:
    p = np.asarray(indptr)
    if p.shape != (n_rows + 1,) or p.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer [{n_rows + 1}], got {p.dtype} {list(p.shape)}")
    p = p.astype(np.int64, copy=False)
    if p[0] != 0 or (p[1:] < p[:-1]).any():
        raise ValueError(f"{name}: must start at 0 and never decrease")
    return p


def assemble_features(
    spec: FeatureSpec,
    tables: FeatureTables,
    user_ids: np.ndarray,
    candidate_indptr: np.ndarray,
    candidate_ids: np.ndarray,
    recent_indptr: np.ndarray,
    recent_item_ids: np.ndarray,
    recent_age_s: np.ndarray,
    out_features: np.ndarray,
) -> np.ndarray:
    """Write features into out_features float32 [n_candidates_total, spec.n_features] and return it.

    user_ids int [b]; candidate_indptr int [b + 1] / candidate_ids int [n_candidates_total]:
    query q's candidates are candidate_ids[indptr[q]:indptr[q + 1]] and fill those rows of
    out_features; recent_indptr int [b + 1] with recent_item_ids int and recent_age_s float32
    (seconds since each recent interaction, >= 0) are each user's recent interactions.
    """
    cs: CompiledSpec = spec.compiled
    uid = np.asarray(user_ids)
    if uid.ndim != 1 or uid.dtype.kind not in "iu":
        raise ValueError("user_ids: expected a 1-D integer array")
    b = uid.shape[0]
    cptr = _csr("candidate_indptr", candidate_indptr, b)
    rptr = _csr("recent_indptr", recent_indptr, b)
    cid = np.asarray(candidate_ids)
    if cid.shape != (cptr[-1],) or cid.dtype.kind not in "iu":
        raise ValueError(f"candidate_ids: expected integer [{cptr[-1]}] (candidate_indptr[-1])")
    rid = np.asarray(recent_item_ids)
    if rid.shape != (rptr[-1],) or rid.dtype.kind not in "iu":
        raise ValueError(f"recent_item_ids: expected integer [{rptr[-1]}] (recent_indptr[-1])")
    age = np.asarray(recent_age_s, dtype=np.float32)
    if age.shape != rid.shape or not (age >= 0).all():
        raise ValueError("recent_age_s: expected finite ages >= 0, one per recent_item_ids")
    shape = (cid.shape[0], spec.n_features)
    o = out_features
    if not isinstance(o, np.ndarray) or o.shape != shape or o.dtype != np.float32:
        raise ValueError(f"out_features: expected float32 {list(shape)}")
    if not o.flags.c_contiguous or not o.flags.writeable:
        raise ValueError("out_features: expected a writeable C-contiguous array")
    if cs.max_user_column >= tables.user_features.shape[1]:
        raise ValueError("spec: a user column is past user_features' columns")
    if cs.max_item_column >= tables.item_features.shape[1]:
        raise ValueError("spec: an item column is past item_features' columns")
    kernel = _assemble_parallel if shape[0] >= PARALLEL_MIN_CANDIDATES else _assemble_serial
    status = kernel(
        cs.source,
        cs.column,
        cs.column2,
        cs.param,
        cs.transform,
        cs.recent_slot,
        cs.bnd_indptr,
        cs.bnd_values,
        cs.n_recent_slots,
        tables.user_features,
        tables.item_features,
        tables.item_category,
        tables.affinity_indptr,
        tables.affinity_category,
        tables.affinity_value,
        uid.astype(np.int64, copy=False),
        cptr,
        cid.astype(np.int64, copy=False),
        rptr,
        rid.astype(np.int64, copy=False),
        age,
        o,
    )
    if status:
        raise ValueError(f"{_ERRORS[status]}: an id is out of range")
    return o
