"""k-means (Lloyd) for the IVF coarse quantizer: nearest-centroid assignment as a blocked kernel."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._microkernel import MK_QUERIES
from ._scan import FASTMATH, TILE_ROWS, convert_tile, score_tile

__all__ = ["assign_nearest", "kmeans"]


@njit(nogil=True, cache=True, parallel=True, fastmath=FASTMATH)
def _assign_nearest(points, scales, centroids_pad, half_norms, out_labels):  # type: ignore[no-untyped-def]
    """out_labels[i] = argmin_c |scale_i * p_i - c|^2 = argmax_c (scale_i * p_i . c - |c|^2 / 2).

    points float32|uint16|int8 [n, d]; scales float32[n]; centroids_pad float32[c8, d] (rows past
    the real centroids are zero, their half_norms +inf); out_labels int64[n].
    """
    n, d = points.shape
    c8 = centroids_pad.shape[0]
    n_tiles = (n + TILE_ROWS - 1) // TILE_ROWS
    for t in prange(n_tiles):
        r0 = t * TILE_ROWS
        rows = min(TILE_ROWS, n - r0)
        tile_t = np.empty((d, TILE_ROWS), np.float32)
        tile_s = np.empty((c8, TILE_ROWS), np.float32)
        convert_tile(points, r0, rows, tile_t)
        score_tile(tile_t, rows, centroids_pad, tile_s)
        for r in range(rows):
            scale = scales[r0 + r]
            best = 0
            best_v = -np.inf
            for c in range(c8):
                v = scale * tile_s[c, r] - half_norms[c]
                if v > best_v:
                    best_v = v
                    best = c
            out_labels[r0 + r] = best


@njit(nogil=True, cache=True)
def _centroid_sums(points, scales, labels, out_sums, out_counts):  # type: ignore[no-untyped-def]
    """out_sums float64[c, d] and out_counts int64[c] of the (scaled) points per label."""
    n, d = points.shape
    out_sums[:] = 0.0
    out_counts[:] = 0
    for i in range(n):
        c = labels[i]
        out_counts[c] += 1
        s = scales[i]
        for j in range(d):
            out_sums[c, j] += np.float64(points[i, j]) * s


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def _kmeans_pp(points, uniforms, out_idx):  # type: ignore[no-untyped-def]
    """k-means++ seeding: out_idx int64[c] rows of points float32[n, d], each next one drawn with
    probability proportional to its squared distance to the nearest row already chosen;
    uniforms float64[c] in [0, 1) make it deterministic."""
    n, d = points.shape
    min_d = np.empty(n, np.float64)
    chosen = min(n - 1, int(uniforms[0] * n))
    out_idx[0] = chosen
    for i in range(n):
        acc = np.float32(0.0)
        for j in range(d):
            t = points[i, j] - points[chosen, j]
            acc += t * t
        min_d[i] = acc
    for c in range(1, out_idx.shape[0]):
        target = uniforms[c] * min_d.sum()
        chosen = n - 1
        run = 0.0
        for i in range(n):
            run += min_d[i]
            if run > target:
                chosen = i
                break
        out_idx[c] = chosen
        for i in range(n):
            acc = np.float32(0.0)
            for j in range(d):
                t = points[i, j] - points[chosen, j]
                acc += t * t
            if acc < min_d[i]:
                min_d[i] = acc


def assign_nearest(
    points: np.ndarray, scales: np.ndarray, centroids: np.ndarray, *, inner_product: bool = False
) -> np.ndarray:
    """Label int64[n] of the nearest centroid for stored points (float32, uint16 bits, int8):
    by L2 distance, or by largest inner product when `inner_product`."""
    n_c, d = centroids.shape
    c8 = (n_c + MK_QUERIES - 1) // MK_QUERIES * MK_QUERIES
    pad = np.zeros((c8, d), np.float32)
    pad[:n_c] = centroids
    half = np.full(c8, np.inf, np.float32)
    half[:n_c] = 0.0 if inner_product else 0.5 * (centroids.astype(np.float64) ** 2).sum(axis=1)
    labels = np.empty(points.shape[0], np.int64)
    _assign_nearest(points, scales, pad, half, labels)
    return labels


def kmeans(points: np.ndarray, n_clusters: int, n_iter: int, seed: int) -> np.ndarray:
    """float32 centroids [n_clusters, d] of float32 points [n, d] (n >= n_clusters).

    Seeded by k-means++ over at most 16 points per cluster (drawn with `seed`); an emptied
    cluster is re-seeded with a random point, so every list has a centroid some item is near.
    """
    rng = np.random.default_rng(seed)
    n, d = points.shape
    ones = np.ones(n, np.float32)
    pool = points[np.sort(rng.choice(n, min(n, 16 * n_clusters), replace=False))]
    seeds = np.empty(n_clusters, np.int64)
    _kmeans_pp(np.ascontiguousarray(pool), rng.random(n_clusters), seeds)
    centroids = pool[seeds].astype(np.float32)
    sums = np.empty((n_clusters, d), np.float64)
    counts = np.empty(n_clusters, np.int64)
    for _ in range(n_iter):
        labels = assign_nearest(points, ones, centroids)
        _centroid_sums(points, ones, labels, sums, counts)
        empty = counts == 0
        centroids = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        if empty.any():
            centroids[empty] = points[rng.choice(n, int(empty.sum()), replace=False)]
    return centroids
