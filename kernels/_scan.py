"""Scoring item ranges against queries and offering the scores to per-query heaps.

Shared by the exact scan (`topk.py`) and the IVF lists (`ivf.py`). Items are float32, uint16
(float16 bits) or int8 rows with a float32 per-row scale (ones for float storage); the score of
item i for query q is `scale[i] * dot(widen(items[i]), queries[q])`.

Eligibility of an item id: `filter_mode` 0 = all items, 1 = `mask[id] != 0` (uint8 per item),
2 = bit `id % 64` of `bitset[id // 64]` (uint64 words). Per-query exclusions are CSR
(`ex_indptr` int64[b + 1], `ex_sorted` int64, each query's segment sorted ascending) and are only
looked up for scores that already beat the query's current k-th score, so they cost almost nothing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._bits import widen
from ._heap import heap_push
from ._microkernel import MK_BLOCK_QUERIES, MK_ITEMS, MK_QUERIES, outer_product_block

__all__ = [
    "FASTMATH",
    "select_tile",
    "TILE_ROWS",
    "convert_tile",
    "is_allowed",
    "is_excluded",
    "offer",
    "pad_queries",
    "panel_as_f32",
    "score_panel_few",
    "score_tile",
]

# No `nnan`/`ninf`: -inf is the "empty slot" score and comparisons with it must stay exact.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
# 256 rows x 64 dims x 4 B = 64 KiB of converted tile: stays in L2 while all queries use it.
TILE_ROWS = 256


@njit(inline="always", nogil=True, cache=True)
def is_allowed(filter_mode, mask, bitset, item_id):  # type: ignore[no-untyped-def]
    if filter_mode == 0:
        return True
    if filter_mode == 1:
        return mask[item_id] != 0
    return (bitset[item_id >> 6] >> np.uint64(item_id & 63)) & np.uint64(1) != 0


@njit(nogil=True, cache=True)
def is_excluded(ex_indptr, ex_sorted, q, item_id):  # type: ignore[no-untyped-def]
    lo = ex_indptr[q]
    hi = ex_indptr[q + 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        v = ex_sorted[mid]
        if v == item_id:
            return True
        if v < item_id:
            lo = mid + 1
        else:
            hi = mid
    return False


@njit(inline="always", nogil=True, cache=True)
def offer(heap_s, heap_i, counts, slot, q, k, s, item_id, ex_indptr, ex_sorted):  # type: ignore[no-untyped-def]
    """Offer score s of item_id to heap `slot` (rows of heap_s / heap_i) for query q."""
    c = counts[slot]
    if c == k and (s < heap_s[slot, 0] or (s == heap_s[slot, 0] and item_id > heap_i[slot, 0])):
        return
    if ex_indptr[q + 1] > ex_indptr[q] and is_excluded(ex_indptr, ex_sorted, q, item_id):
        return
    counts[slot] = heap_push(heap_s[slot], heap_i[slot], c, k, s, item_id)


@njit(nogil=True, cache=True)
def convert_tile(items, r0, rows, out_tile_t):  # type: ignore[no-untyped-def]
    """Widen items[r0:r0+rows] into the transposed out_tile_t[:, :rows] (float32[d, TILE_ROWS],
    items in columns, as the microkernel wants them); zero the padding columns."""
    d = items.shape[1]
    # dimension-outer: each write row of the tile is contiguous (measured faster than row-outer)
    for j in range(d):
        for r in range(rows):
            out_tile_t[j, r] = widen(items[r0 + r, j])
        for r in range(rows, out_tile_t.shape[1]):
            out_tile_t[j, r] = 0.0


def pad_queries(queries: np.ndarray) -> np.ndarray:
    """float32 [b rounded up to MK_QUERIES, d] copy of queries, zero rows at the end."""
    b, d = queries.shape
    out = np.zeros(((b + MK_QUERIES - 1) // MK_QUERIES * MK_QUERIES, d), np.float32)
    out[:b] = queries
    return out


@njit(nogil=True, cache=True)
def score_tile(tile_t, rows, queries_pad, out_s):  # type: ignore[no-untyped-def]
    """out_s[q, r] = dot(tile_t[:, r], queries_pad[q]) for r < rows (rounded up to MK_ITEMS),
    all q.

    tile_t float32[d, TILE_ROWS]; queries_pad float32[b8, d] with b8 % MK_QUERIES == 0; out_s
    float32[b8, TILE_ROWS], query-major so that selection reads each query's scores contiguously.
    Item blocks outside, query blocks inside: an MK_ITEMS slice of the tile (d x 16 or 32 items,
    4-8 KiB) stays in L1 while every query block uses it.
    """
    b8 = queries_pad.shape[0]
    for r0 in range(0, rows, MK_ITEMS):
        for c0 in range(0, b8, MK_BLOCK_QUERIES):
            outer_product_block(tile_t, queries_pad, out_s, r0, c0)


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def select_tile(  # type: ignore[no-untyped-def]
    tile_s,
    r0,
    rows,
    b,
    scales,
    offsets,
    cids,
    use_offsets,
    k,
    filter_mode,
    mask,
    bitset,
    ex_indptr,
    ex_sorted,
    heap_s,
    heap_i,
    counts,
    heap_base,
):
    """Offer the scores of tile rows r0..r0+rows to the heaps heap_base + q.

    tile_s float32[>= b, TILE_ROWS] (query-major dots) becomes, in place, the final scores
    dot * scales[i] (+ offsets[q, cids[i]] when use_offsets: residual int8). Once a heap is full,
    one vectorised count of the scores at or above its k-th score skips the whole tile for that
    query, which is the common case.
    """
    for q in range(b):
        slot = heap_base + q
        # -inf until the heap is full: then every score is a hit
        thr = heap_s[slot, 0] if counts[slot] == k else np.float32(-np.inf)
        hits = 0
        # one pass: final score (scale, residual offset) and the count of scores >= thr.
        # Row views indexed from 0: `scales[r0 + r]` kept a negative-index check per element
        # that stopped LLVM from vectorising the loop (scalar, ~2 ns per item before).
        row = tile_s[q, :rows]
        sc = scales[r0 : r0 + rows]
        if use_offsets:
            off = offsets[q]
            ci = cids[r0 : r0 + rows]
            for r in range(rows):
                row[r] = row[r] * sc[r] + off[ci[r]]
        else:
            for r in range(rows):
                row[r] = row[r] * sc[r]
        for r in range(rows):
            hits += row[r] >= thr
        if hits == 0:
            continue
        for r in range(rows):
            s = tile_s[q, r]
            if counts[slot] == k and s < heap_s[slot, 0]:
                continue
            if is_allowed(filter_mode, mask, bitset, r0 + r):
                offer(heap_s, heap_i, counts, slot, q, k, s, r0 + r, ex_indptr, ex_sorted)


@njit(nogil=True, cache=True)
def panel_as_f32(panels, t, scratch):  # type: ignore[no-untyped-def]
    """Widen panels[t] into scratch float32 [d, T] and return scratch.

    float32 panels are copied too: the microkernel reads an MK_ITEMS slice across all d rows of the
    panel (1 KiB apart), which from DRAM stalls (batch 8: 3.5x slower than copying first); the
    copy streams the panel once and the microkernel then reads L1/L2.
    """
    p = panels[t]
    for j in range(p.shape[0]):
        for r in range(p.shape[1]):
            scratch[j, r] = widen(p[j, r])
    return scratch


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def score_panel_few(panel, queries, b, out_s):  # type: ignore[no-untyped-def]
    """out_s[q, r] = dot(widen(panel[:, r]), queries[q]) for q < b (a few queries), all r.

    panel: storage dtype [d, T] (items in columns); out_s float32[>= b, T]. Items in SIMD lanes:
    one broadcast query value times a row of T items per step, no horizontal sums. int8 panels
    (16 KiB, compute-bound: a widening per value) take 4 rows per pass over out_s, which saves
    3 of 4 loads and stores of the scores (this pass alone 1.15-1.25x faster at batch 1 on AVX2;
    the whole int8 search 1.1x at batch 3, within noise at batch 1); float32 / float16 panels
    stream from memory, where 4 rows at once measured 1.5-1.7x slower, so they take one.
    """
    d, n_cols = panel.shape
    d4 = d - d % 4 if panel.itemsize == 1 else 0
    for q in range(b):
        for r in range(n_cols):
            out_s[q, r] = 0.0
        for j in range(0, d4, 4):
            q0, q1, q2, q3 = queries[q, j], queries[q, j + 1], queries[q, j + 2], queries[q, j + 3]
            for r in range(n_cols):
                out_s[q, r] += (q0 * widen(panel[j, r]) + q1 * widen(panel[j + 1, r])) + (
                    q2 * widen(panel[j + 2, r]) + q3 * widen(panel[j + 3, r])
                )
        for j in range(d4, d):
            qv = queries[q, j]
            for r in range(n_cols):
                out_s[q, r] += qv * widen(panel[j, r])
