"""Inverted-file (IVF) approximate top-k: k-means lists, contiguous per list, searched by nprobe."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from ._bits import widen
from ._heap import heap_push, heap_sorted_into
from ._kmeans import assign_nearest, kmeans
from ._scan import FASTMATH, is_allowed, offer
from ._validate import (
    check_exclusions,
    check_filter,
    check_k,
    check_out,
    check_queries,
    thread_count,
)
from .items import ItemMatrix
from .topk import _merge_heaps

__all__ = ["IVF_PARALLEL_MIN_BATCH", "IVFIndex", "build_ivf", "search_ivf"]

# A query's IVF scan is well under a millisecond; waking a second thread for it cost more than it
# saved in every measurement here (batch 1: 0.44 ms on one thread, 2.3 ms on two; batch 8: 2.4 ms
# against 6.4 ms). Smaller batches run on the calling thread unless n_threads says otherwise.
IVF_PARALLEL_MIN_BATCH = 16
# Lists are stored as panels of this many items (items in SIMD lanes, as the exact scan's panels)
LIST_PANEL_ROWS = 32


def list_panels(data: np.ndarray, list_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(panels [n_panels, dim, 32] in data's dtype, panel_offsets int64 [nlist + 1]): list l is
    panels panel_offsets[l]:panel_offsets[l + 1], its rows in order, zero rows padding its end
    (1.6% more rows on 1,000-item lists). A second copy of the list items (the rows are saved)."""
    n, d = data.shape
    w = LIST_PANEL_ROWS
    sizes = np.diff(list_offsets)
    panel_offsets = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(-(-sizes // w), out=panel_offsets[1:])
    padded = np.zeros((int(panel_offsets[-1]) * w, d), data.dtype)
    padded[np.repeat(panel_offsets[:-1] * w - list_offsets[:-1], sizes) + np.arange(n)] = data
    return np.ascontiguousarray(padded.reshape(-1, w, d).transpose(0, 2, 1)), panel_offsets


@dataclass(frozen=True, eq=False)
class IVFIndex:
    """centroids float32 [nlist, dim]; list_offsets int64 [nlist + 1]: list l holds rows
    list_offsets[l]:list_offsets[l + 1] of `items` (reordered so each list is contiguous);
    row_ids int64 [n_items]: the original id of each row."""

    centroids: np.ndarray
    list_offsets: np.ndarray
    row_ids: np.ndarray
    items: ItemMatrix
    # the lists again as transposed 32-item panels, what the search reads (see list_panels)
    panels: np.ndarray = field(init=False, repr=False)
    panel_offsets: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        panels, panel_offsets = list_panels(self.items.data, self.list_offsets)
        object.__setattr__(self, "panels", panels)
        object.__setattr__(self, "panel_offsets", panel_offsets)

    @property
    def nlist(self) -> int:
        return int(self.centroids.shape[0])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an .npz of plain arrays (no pickle); float16 items keep their float16 dtype."""
        data = self.items.data
        if self.items.dtype == "float16":
            data = data.view(np.float16)
        arrays = {
            "centroids": self.centroids,
            "list_offsets": self.list_offsets,
            "row_ids": self.row_ids,
            "data": data,
            "scales": self.items.scales,
        }
        if self.items.centroids is not None and self.items.centroid_ids is not None:
            arrays["res_centroids"] = self.items.centroids
            arrays["res_ids"] = self.items.centroid_ids
        np.savez(path, **arrays)  # type: ignore[arg-type]  # stubs: allow_pickle is a bool

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IVFIndex:
        with np.load(path, allow_pickle=False) as z:
            data = z["data"]
            if data.dtype == np.int8:
                res = (z["res_centroids"], z["res_ids"]) if "res_ids" in z.files else (None, None)
                items = ItemMatrix.from_array(data, z["scales"], *res)
            else:
                items = ItemMatrix.from_array(data)
            index = cls(
                np.ascontiguousarray(z["centroids"], np.float32),
                np.ascontiguousarray(z["list_offsets"], np.int64),
                np.ascontiguousarray(z["row_ids"], np.int64),
                items,
            )
        n, nlist = items.n_items, index.nlist
        offs = index.list_offsets
        if (
            index.centroids.shape != (nlist, items.dim)
            or offs.shape != (nlist + 1,)
            or offs[0] != 0
            or offs[-1] != n
            or (np.diff(offs) < 0).any()
            or index.row_ids.shape != (n,)
        ):
            raise ValueError(f"path: {os.fspath(path)!r} is not a consistent IVF index")
        return index


def build_ivf(
    items: ItemMatrix,
    nlist: int,
    *,
    n_iter: int = 20,
    train_size: int | None = None,
    seed: int = 0,
) -> IVFIndex:
    """k-means (L2, `n_iter` Lloyd rounds on `train_size` sampled items, default 64 per list),
    then every item joins the list whose centroid has the largest inner product with it: the
    same rule the search probes by (as faiss's IVF with METRIC_INNER_PRODUCT does), which
    measured a higher recall at equal nprobe than L2 membership. Lists are stored contiguously."""
    n = items.n_items
    if not 1 <= nlist <= n:
        raise ValueError(f"nlist: expected 1..n_items ({n}), got {nlist}")
    rng = np.random.default_rng(seed)
    m = min(n, train_size or 64 * nlist)
    sample_ids = np.sort(rng.choice(n, m, replace=False))
    if items.centroids is not None:  # residual int8: assign the dequantised items
        points = items.to_float32()
        sample = points[sample_ids]
        centroids = kmeans(sample, nlist, n_iter, seed)
        labels = assign_nearest(points, np.ones(n, np.float32), centroids, inner_product=True)
    else:
        sample = items.data[sample_ids]
        if items.dtype == "float16":
            sample = sample.view(np.float16)
        sample = sample.astype(np.float32) * items.scales[sample_ids, None]
        centroids = kmeans(sample, nlist, n_iter, seed)
        labels = assign_nearest(items.data, items.scales, centroids, inner_product=True)
    order = np.argsort(labels, kind="stable")
    offsets = np.zeros(nlist + 1, np.int64)
    np.cumsum(np.bincount(labels, minlength=nlist), out=offsets[1:])
    cids = None if items.centroid_ids is None else items.centroid_ids[order].copy()
    reordered = ItemMatrix(
        np.ascontiguousarray(items.data[order]),
        items.scales[order].copy(),
        items.dtype,
        centroids=items.centroids,
        centroid_ids=cids,
    )
    return IVFIndex(centroids, offsets, order.astype(np.int64), reordered)


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def _scan_list(  # type: ignore[no-untyped-def]
    panels,
    p0,
    p1,
    r_start,
    r_end,
    queries,
    q,
    scales,
    offsets,
    cids,
    use_offsets,
    row_ids,
    k,
    filter_mode,
    mask,
    bitset,
    ex_indptr,
    ex_sorted,
    heap_s,
    heap_i,
    counts,
    slot,
):
    """Offer query q's scores of one list (panels p0..p1, reordered rows r_start..r_end) to
    heap `slot`. 32 items per step in SIMD lanes: no horizontal sum per item."""
    d, w = panels.shape[1], panels.shape[2]
    buf = np.empty(w, np.float32)
    for p in range(p0, p1):
        r0 = r_start + (p - p0) * w
        rows = min(w, r_end - r0)
        pan = panels[p]
        for r in range(w):
            buf[r] = 0.0
        for j in range(d):
            qv = queries[q, j]
            for r in range(w):
                buf[r] += qv * widen(pan[j, r])
        for r in range(rows):
            s = buf[r] * scales[r0 + r]
            if use_offsets:
                s += offsets[q, cids[r0 + r]]
            if counts[slot] == k and s < heap_s[slot, 0]:
                continue
            item_id = row_ids[r0 + r]
            if is_allowed(filter_mode, mask, bitset, item_id):
                offer(heap_s, heap_i, counts, slot, q, k, s, item_id, ex_indptr, ex_sorted)


@njit(nogil=True, cache=True, parallel=True, fastmath=FASTMATH)
def _ivf_search(  # type: ignore[no-untyped-def]
    queries,
    centroids,
    list_offsets,
    panel_offsets,
    panels,
    scales,
    offsets,
    cids,
    use_offsets,
    row_ids,
    nprobe,
    k,
    filter_mode,
    mask,
    bitset,
    ex_indptr,
    ex_sorted,
    n_parts,
    out_ids,
    out_scores,
):
    """queries float32[b, d]; centroids float32[nlist, d]; panels/panel_offsets/scales/row_ids
    as IVFIndex;
    offsets/cids/use_offsets: residual int8 terms as in select_tile.
    Probes the nprobe lists of highest centroid inner product. Each query's probed lists are
    dealt round-robin to n_parts heaps (n_parts > 1 spreads a small batch over threads)."""
    b, d = queries.shape
    nlist = centroids.shape[0]
    probes = np.empty((b, nprobe), np.int64)
    for q in prange(b):
        ps = np.empty(nprobe, np.float32)
        pi = np.empty(nprobe, np.int64)
        out_ps = np.empty(nprobe, np.float32)
        m = 0
        for c in range(nlist):
            acc = np.float32(0.0)
            for j in range(d):
                acc += queries[q, j] * centroids[c, j]
            m = heap_push(ps, pi, m, nprobe, acc, c)
        heap_sorted_into(ps, pi, m, out_ps, probes[q])
    heap_s = np.empty((n_parts * b, k), np.float32)
    heap_i = np.empty((n_parts * b, k), np.int64)
    counts = np.zeros(n_parts * b, np.int64)
    for u in prange(n_parts * b):
        q = u % b
        p = u // b
        for j in range(p, nprobe, n_parts):
            lst = probes[q, j]
            _scan_list(
                panels, panel_offsets[lst], panel_offsets[lst + 1], list_offsets[lst],
                list_offsets[lst + 1], queries, q, scales, offsets, cids, use_offsets, row_ids,
                k, filter_mode, mask, bitset, ex_indptr, ex_sorted, heap_s, heap_i, counts, u,
            )  # fmt: skip
    _merge_heaps(heap_s, heap_i, counts, n_parts, b, k, out_ids, out_scores)


def search_ivf(
    queries: np.ndarray,
    index: IVFIndex,
    k: int,
    nprobe: int,
    *,
    item_mask: np.ndarray | None = None,
    item_bitset: np.ndarray | None = None,
    exclude_indptr: np.ndarray | None = None,
    exclude_indices: np.ndarray | None = None,
    out_ids: np.ndarray | None = None,
    out_scores: np.ndarray | None = None,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-k over the `nprobe` lists nearest each query (inner product).

    Arguments and results as `topk_inner_product` (ids are the original item ids); with
    nprobe == nlist the result equals the exact search. n_threads: threads for this call
    (default: 1 below IVF_PARALLEL_MIN_BATCH queries, else Numba's setting for this thread).
    """
    if not isinstance(index, IVFIndex):
        raise ValueError("index: expected an IVFIndex (build_ivf or IVFIndex.load)")
    items = index.items
    q = check_queries(queries, items.dim)
    k = check_k(k)
    if isinstance(nprobe, bool) or not isinstance(nprobe, int | np.integer) or nprobe < 1:
        raise ValueError(f"nprobe: expected a positive integer, got {nprobe!r}")
    nprobe = min(int(nprobe), index.nlist)
    b = q.shape[0]
    mode, mask, bitset = check_filter(items.n_items, item_mask, item_bitset)
    ex_indptr, ex_sorted = check_exclusions(b, items.n_items, exclude_indptr, exclude_indices)
    ids = check_out(out_ids, "out_ids", (b, k), np.int64)
    scores = check_out(out_scores, "out_scores", (b, k), np.float32)
    if n_threads is None and b < IVF_PARALLEL_MIN_BATCH:
        n_threads = 1
    with thread_count(n_threads) as threads:
        n_parts = max(1, min(nprobe, threads // b)) if b < threads else 1
        _ivf_search(
            q, index.centroids, index.list_offsets, index.panel_offsets, index.panels,
            items.scales, *items.query_offsets(q), index.row_ids, nprobe, k, mode, mask, bitset,
            ex_indptr, ex_sorted, n_parts, ids, scores,
        )  # fmt: skip
    return ids, scores
