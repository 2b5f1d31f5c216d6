"""Exact maximum-inner-product top-k over an item matrix, with item filters and exclusions."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._heap import heap_push, heap_sorted_into
from ._scan import (
    TILE_ROWS,
    pad_queries,
    panel_as_f32,
    score_panel_few,
    score_tile,
    select_tile,
)
from ._validate import (
    check_exclusions,
    check_filter,
    check_k,
    check_out,
    check_queries,
    thread_count,
)
from .items import PANEL_ROWS, ItemMatrix

__all__ = ["SMALL_BATCH", "topk_inner_product"]

# Below this many queries each panel is scored straight from its storage dtype, query by query
# (the scan is memory bound); from it on, a panel is widened to float32 once (float32 panels are
# used in place) and scored by the register-blocked microkernel (its block follows the ISA).
SMALL_BATCH = 4
assert TILE_ROWS == PANEL_ROWS


@njit(nogil=True, cache=True, parallel=True)
def _topk_exact(  # type: ignore[no-untyped-def]
    queries,
    queries_pad,
    panels,
    n,
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
    n_threads,
    out_ids,
    out_scores,
):
    """queries float32[b, d]; queries_pad the same with zero rows up to a multiple of 8;
    panels float32|uint16|int8 [n_tiles, d, TILE_ROWS] (ItemMatrix.panels) of n items;
    scales float32[n]; offsets float32[b, c] / cids int32[n] / use_offsets: see select_tile; out_ids int64[b, k], out_scores
    float32[b, k]. Items split into one chunk per thread (n_threads), each with its own heap per
    query; the chunks' heaps are merged per query at the end."""
    b, d = queries.shape
    n_tiles = panels.shape[0]
    n_chunks = max(1, min(n_threads, n_tiles))
    heap_s = np.empty((n_chunks * b, k), np.float32)
    heap_i = np.empty((n_chunks * b, k), np.int64)
    counts = np.zeros(n_chunks * b, np.int64)
    for c in prange(n_chunks):
        base = c * b
        scratch = np.empty((d, TILE_ROWS), np.float32)
        tile_s = np.empty((max(b, queries_pad.shape[0]), TILE_ROWS), np.float32)
        for t in range(c * n_tiles // n_chunks, (c + 1) * n_tiles // n_chunks):
            r0 = t * TILE_ROWS
            rows = min(TILE_ROWS, n - r0)
            if b < SMALL_BATCH:
                score_panel_few(panels[t], queries, b, tile_s)
            else:
                score_tile(panel_as_f32(panels, t, scratch), rows, queries_pad, tile_s)
            select_tile(
                tile_s, r0, rows, b, scales, offsets, cids, use_offsets, k, filter_mode, mask,
                bitset, ex_indptr, ex_sorted, heap_s, heap_i, counts, base,
            )  # fmt: skip
    _merge_heaps(heap_s, heap_i, counts, n_chunks, b, k, out_ids, out_scores)


@njit(nogil=True, cache=True, parallel=True)
def _merge_heaps(heap_s, heap_i, counts, n_parts, b, k, out_ids, out_scores):  # type: ignore[no-untyped-def]
    """Per query q, merge heaps at slots p * b + q (p < n_parts) into sorted out_* rows."""
    for q in prange(b):
        if n_parts == 1:
            heap_sorted_into(heap_s[q], heap_i[q], counts[q], out_scores[q], out_ids[q])
            continue
        ms = np.empty(k, np.float32)
        mi = np.empty(k, np.int64)
        m = 0
        for p in range(n_parts):
            slot = p * b + q
            for j in range(counts[slot]):
                m = heap_push(ms, mi, m, k, heap_s[slot, j], heap_i[slot, j])
        heap_sorted_into(ms, mi, m, out_scores[q], out_ids[q])


def topk_inner_product(
    queries: np.ndarray,
    items: ItemMatrix,
    k: int,
    *,
    item_mask: np.ndarray | None = None,
    item_bitset: np.ndarray | None = None,
    exclude_indptr: np.ndarray | None = None,
    exclude_indices: np.ndarray | None = None,
    out_ids: np.ndarray | None = None,
    out_scores: np.ndarray | None = None,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k items by inner product for each query.

    queries: float [b, dim] (or [dim]); items: `ItemMatrix` (float32, float16 or int8 + scales);
    k: 1..1000. item_mask: bool/uint8 [n_items] (True = eligible) or item_bitset: uint64
    [ceil(n_items / 64)] (bit i % 64 of word i // 64). exclude_indptr int [b + 1] and
    exclude_indices int (ids) give per-query exclusions in CSR form.
    Returns (ids int64 [b, k], scores float32 [b, k]), written into out_ids / out_scores when
    given: sorted by score descending, equal scores by lower id. Where fewer than k items are
    eligible, the rows end with id -1 and score -inf. n_threads: threads for this call (default:
    Numba's current setting for the calling thread; on a busy machine one thread often wins).
    """
    if not isinstance(items, ItemMatrix) or items.panels is None:
        raise ValueError("items: expected an ItemMatrix from ItemMatrix.from_array / quantize")
    q = check_queries(queries, items.dim)
    k = check_k(k)
    b = q.shape[0]
    mode, mask, bitset = check_filter(items.n_items, item_mask, item_bitset)
    ex_indptr, ex_sorted = check_exclusions(b, items.n_items, exclude_indptr, exclude_indices)
    ids = check_out(out_ids, "out_ids", (b, k), np.int64)
    scores = check_out(out_scores, "out_scores", (b, k), np.float32)
    with thread_count(n_threads) as threads:
        _topk_exact(
            q, pad_queries(q), items.panels, items.n_items, items.scales, *items.query_offsets(q), k, mode, mask, bitset, ex_indptr, ex_sorted, threads,
            ids, scores,
        )  # fmt: skip
    return ids, scores
