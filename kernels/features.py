"""Feature assembly: one dense float32 row per (query, candidate) from a `FeatureSpec`."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._bits import bits_to_f32, f32_to_bits
from .feature_spec import CompiledSpec, Feature, FeatureSpec
from .feature_tables import FeatureTables

__all__ = ["Feature", "FeatureSpec", "FeatureTables", "assemble_features"]

_LN2 = np.log(2.0)
# Above this many candidates per call, queries are spread over threads (training-time calls);
# a request's few hundred candidates run on the calling thread: waking threads costs more.
PARALLEL_MIN_CANDIDATES = 20_000
CAND_BLOCK = 64  # candidates whose rows are filled together (see the kernel body)
_ERRORS = {
    -1: "user_ids",
    -2: "candidate_ids",
    -3: "recent_item_ids",
    -4: "candidate_indptr",
    -5: "recent_indptr",
    -6: "recent_age_s",
}


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
def _splitmix(a, b):  # type: ignore[no-untyped-def]
    # splitmix64 finaliser over a combined key: stable across runs, platforms and languages
    x = np.uint64(a) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(b)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(inline="always", nogil=True, cache=True)
def _hash_bucket(a, b, n_buckets):  # type: ignore[no-untyped-def]
    return np.float32(_splitmix(a, b) % np.uint64(n_buckets))


_I23, _I127, _I1 = np.int32(23), np.int32(127), np.int32(1)
_EXP_MASK, _MANT_MASK, _ONE_BITS = np.int32(0xFF), np.int32(0x7FFFFF), np.int32(0x3F800000)


# no fastmath here: reassociation would fold (1 + x) - 1 into x and undo the correction.
# error_model="numpy": Python's ZeroDivisionError check on "/" is a branch that stops LLVM
# from vectorising the loop (scalar 6 ns per value before, vectorised after).
@njit(inline="always", nogil=True, cache=True, error_model="numpy")
def _log1p_nonneg(x):  # type: ignore[no-untyped-def]
    """log1p(max(x, 0)) in float32, branch-free so that loops over it vectorise (libm's log1pf
    is a scalar call, ~10 ns; this inlines at a few ns). log(1 + x) from the exponent and an atanh series on the mantissa
    in [sqrt(1/2), sqrt(2)), then Goldberg's x / ((1 + x) - 1) factor restores small x."""
    x = x if x > np.float32(0.0) else np.float32(0.0)
    u = np.float32(1.0) + x
    bits = f32_to_bits(u)
    e = ((bits >> _I23) & _EXP_MASK) - _I127
    m = bits_to_f32((bits & _MANT_MASK) | _ONE_BITS)
    big = m > np.float32(1.4142135)
    m = m * np.float32(0.5) if big else m
    e = e + _I1 if big else e
    t = (m - np.float32(1.0)) / (m + np.float32(1.0))
    t2 = t * t
    poly = np.float32(1.0 / 9.0) * t2 + np.float32(1.0 / 7.0)
    poly = poly * t2 + np.float32(1.0 / 5.0)
    poly = poly * t2 + np.float32(1.0 / 3.0)
    poly = poly * t2 + np.float32(1.0)
    log_u = np.float32(e) * np.float32(0.6931472) + np.float32(2.0) * t * poly
    d = u - np.float32(1.0)
    ratio = x / d if d != np.float32(0.0) else np.float32(1.0)
    return log_u * ratio if d != np.float32(0.0) else x


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
    """Kernel body; returns 0, or a negative code naming the bad argument (see _ERRORS).

    Per (query, block of CAND_BLOCK candidates, feature), the block's values go to a contiguous
    scratch column, are transformed there (loops that vectorise), then copied into out[:, f]:
    the source switch sits outside every candidate loop, and the block's rows of `out` stay in
    L1 while its features fill them. Recent interactions are sorted per query by key
    (item or category) with their decayed weights: one binary search per candidate and key kind.
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
        if c1 < c0 or c1 > cand_ids.shape[0]:
            status[q] = -4
            continue
        if n_rec < 0 or recent_indptr[q + 1] > recent_ids.shape[0]:
            status[q] = -5
            continue
        if u < 0 or u >= n_users:
            status[q] = -1
            continue
        bad = 0
        for c in range(c0, c1):
            bad |= cand_ids[c] < 0 or cand_ids[c] >= n_items
        if bad:
            status[q] = -2
            continue
        for j in range(r0, r0 + n_rec):
            bad |= recent_ids[j] < 0 or recent_ids[j] >= n_items
        if bad:
            status[q] = -3
            continue
        for j in range(r0, r0 + n_rec):
            bad |= not recent_age_s[j] >= 0
        if bad:
            status[q] = -6
            continue
        nc = c1 - c0
        ids = cand_ids[c0:c1]
        o = out[c0:c1]
        col = np.empty(CAND_BLOCK, np.float32)
        cnt = np.empty(CAND_BLOCK, np.float32)
        cat = np.empty(nc, np.int64)
        for c in range(nc):
            cat[c] = item_cat[ids[c]]
        # Recent interactions sorted twice, by item and by category (a permutation each;
        # insertion sort: a user's recent list is short). Each candidate finds its run of equal
        # keys once per key kind, and every recent feature sums its own weights over that run.
        perm = np.empty((2, n_rec), np.int64)
        keys = np.empty((2, n_rec), np.int64)
        for kind in range(2):
            for j in range(n_rec):
                key = recent_ids[r0 + j]
                if kind == 1:
                    key = item_cat[key]
                p = j
                while p > 0 and keys[kind, p - 1] > key:
                    keys[kind, p] = keys[kind, p - 1]
                    perm[kind, p] = perm[kind, p - 1]
                    p -= 1
                keys[kind, p] = key
                perm[kind, p] = j
        run = np.zeros((2, 2, nc), np.int64)  # [kind, lo/hi, candidate]
        if n_rec > 0 and n_slots > 0:
            for kind in range(2):
                for c in range(nc):
                    key = ids[c] if kind == 0 else cat[c]
                    p = _lower_bound(keys[kind], 0, n_rec, key)
                    run[kind, 0, c] = p
                    while p < n_rec and keys[kind, p] == key:
                        p += 1
                    run[kind, 1, c] = p
        hits = np.empty((2, nc), np.int64)  # per kind: the candidates whose run is not empty
        n_hits = np.zeros(2, np.int64)
        for kind in range(2):
            for c in range(nc):
                if run[kind, 1, c] > run[kind, 0, c]:
                    hits[kind, n_hits[kind]] = c
                    n_hits[kind] += 1
        hit_lo = np.zeros(2, np.int64)  # per kind: the block's hits are hits[kind, lo:hi]
        hit_hi = np.zeros(2, np.int64)
        wts = np.empty((max(n_slots, 1), n_rec), np.float32)
        for f in range(n_feat):
            s = recent_slot[f]
            if s < 0:
                continue
            rate = _LN2 / param[f]
            kind = 0 if source[f] == 4 else 1
            for p in range(n_rec):
                wts[s, p] = np.float32(np.exp(-recent_age_s[r0 + perm[kind, p]] * rate))
        a_lo = aff_ptr[u]
        a_hi = aff_ptr[u + 1]
        aff = np.zeros(nc, np.float32)
        need_aff = False
        for f in range(n_feat):
            need_aff |= source[f] == 2
        if need_aff:
            for c in range(nc):
                p = _lower_bound(aff_cat, a_lo, a_hi, cat[c])
                aff[c] = aff_val[p] if p < a_hi and aff_cat[p] == cat[c] else 0.0
        # Candidates in blocks of CAND_BLOCK, every feature inside a block: the block's rows of
        # `out` (64 x 64 floats, 16 KiB) and of item_f stay in L1 while its features fill them.
        # Against one pass per feature over all 500 candidates of the benchmark's case: 1.15x
        # (median of 60 interleaved rounds; 128 or 256 a block measured no better).
        for b0 in range(0, nc, CAND_BLOCK):
            m = min(CAND_BLOCK, nc - b0)
            idb = ids[b0 : b0 + m]
            catb = cat[b0 : b0 + m]
            affb = aff[b0 : b0 + m]
            ob = o[b0 : b0 + m]
            for kind in range(2):
                hit_lo[kind] = hit_hi[kind]
                while hit_hi[kind] < n_hits[kind] and hits[kind, hit_hi[kind]] < b0 + m:
                    hit_hi[kind] += 1
            for f in range(n_feat):
                src = source[f]
                k = column[f]
                if src == 0:
                    v = user_f[u, k]
                    for c in range(m):
                        col[c] = v
                elif src == 1:
                    for c in range(m):
                        col[c] = item_f[idb[c], k]
                elif src == 2:
                    for c in range(m):
                        col[c] = affb[c]
                elif src == 3:
                    mean = user_f[u, column2[f]]
                    for c in range(m):
                        col[c] = item_f[idb[c], k] / mean if mean > 0 else 0.0
                elif src == 4 or src == 5:
                    # most candidates match no recent interaction: zeros, then the few that do
                    s = recent_slot[f]
                    kind = src - 4
                    for c in range(m):
                        col[c] = 0.0
                    for h in range(hit_lo[kind], hit_hi[kind]):
                        c = hits[kind, h]
                        acc = np.float32(0.0)
                        for p in range(run[kind, 0, c], run[kind, 1, c]):
                            acc += wts[s, p]
                        col[c - b0] = acc
                else:
                    a = np.int64(user_f[u, k])
                    nb = np.int64(param[f])
                    if (nb & (nb - 1)) == 0:  # Python: & binds before ==
                        # a power-of-two count (the usual choice): the remainder is a mask, where
                        # a 64-bit division is one scalar DIV per value (docs/performance.md)
                        mask = np.uint64(nb - 1)
                        for c in range(m):
                            col[c] = np.float32(_splitmix(a, catb[c]) & mask)
                    else:
                        for c in range(m):
                            col[c] = _hash_bucket(a, catb[c], nb)
                t = transform[f]
                if t == 1:
                    for c in range(m):
                        col[c] = _log1p_nonneg(col[c])
                elif t == 2:
                    # boundary-outer so that the candidate loop is the inner, vectorisable one
                    for c in range(m):
                        cnt[c] = 0.0
                    for e in range(bnd_indptr[f], bnd_indptr[f + 1]):
                        edge = bnd_values[e]
                        for c in range(m):
                            cnt[c] += np.float32(1.0) if edge <= col[c] else np.float32(0.0)
                    for c in range(m):
                        col[c] = cnt[c]
                for c in range(m):
                    ob[c, f] = col[c]
    return status.min() if b > 0 else 0


_assemble_serial = njit(nogil=True, cache=True, error_model="numpy")(_assemble_py)
_assemble_parallel = njit(nogil=True, cache=True, parallel=True, error_model="numpy")(_assemble_py)


_I64 = np.dtype(np.int64)


def _ints(name: str, a: np.ndarray | list[int], n: int | None = None) -> np.ndarray:
    # the serving path passes int64 arrays: return them as they are (a few attribute reads)
    if type(a) is np.ndarray and a.dtype is _I64 and a.ndim == 1 and (n is None or len(a) == n):
        return a
    x = np.asarray(a)
    if x.ndim != 1 or (x.dtype.kind not in "iu" and x.size) or (n is not None and x.shape[0] != n):
        want = f"[{n}]" if n is not None else "1-D"
        raise ValueError(f"{name}: expected an integer array {want}, got {x.dtype} {list(x.shape)}")
    return x.astype(np.int64, copy=False)


def _spec_and_tables(cs: CompiledSpec, tables: FeatureTables) -> tuple:
    """The kernel's leading arguments: the compiled spec's arrays, then the tables'."""
    return (
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
    )


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
    uid = _ints("user_ids", user_ids)
    b = uid.shape[0]
    # the kernel checks values (ids in range, indptr order, ages >= 0): one pass, no temporaries
    cptr = _ints("candidate_indptr", candidate_indptr, b + 1)
    rptr = _ints("recent_indptr", recent_indptr, b + 1)
    cid = _ints("candidate_ids", candidate_ids)
    rid = _ints("recent_item_ids", recent_item_ids)
    age = np.asarray(recent_age_s, dtype=np.float32)
    if age.shape != rid.shape:
        raise ValueError("recent_age_s: expected one age (seconds) per recent_item_ids entry")
    if cptr[0] != 0 or cptr[-1] != cid.shape[0]:
        raise ValueError("candidate_indptr: must start at 0 and end at len(candidate_ids)")
    if rptr[0] != 0 or rptr[-1] != rid.shape[0]:
        raise ValueError("recent_indptr: must start at 0 and end at len(recent_item_ids)")
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
    status = kernel(  # type: ignore[call-arg]
        *_spec_and_tables(cs, tables),
        uid,
        cptr,
        cid,
        rptr,
        rid,
        age,
        o,
    )
    if status:
        raise ValueError(f"{_ERRORS[status]}: an id is out of range")
    return o
