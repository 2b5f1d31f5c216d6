"""`ItemMatrix`: an item embedding matrix in its storage dtype, validated once.

Checking 1M x 64 items for NaN costs tens of milliseconds, far beyond a request's budget, so the
check happens when the matrix is built (at load time), and the kernels take the checked matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._kmeans import assign_nearest, kmeans

__all__ = ["PANEL_ROWS", "STORAGE_DTYPES", "ItemMatrix", "to_panels"]

STORAGE_DTYPES = ("float32", "float16", "int8")
PANEL_ROWS = 256  # = _scan.TILE_ROWS: 256 items x 64 dims x 4 B = one 64 KiB L2-resident tile


def to_panels(data: np.ndarray) -> np.ndarray:
    """[n_tiles, dim, PANEL_ROWS] transposed tiles of row-major data [n, dim], zero-padded."""
    n, d = data.shape
    n_tiles = max(1, -(-n // PANEL_ROWS))
    padded = np.zeros((n_tiles * PANEL_ROWS, d), data.dtype)
    padded[:n] = data
    return np.ascontiguousarray(padded.reshape(n_tiles, PANEL_ROWS, d).transpose(0, 2, 1))


@dataclass(frozen=True, eq=False)
class ItemMatrix:
    """Items as stored: `data` float32 / uint16 (float16 bits) / int8 [n_items, dim], C order;
    `scales` float32 [n_items]: score = scale * dot(data_row, query) (ones unless int8).
    int8 from `quantize` stores residuals to k-means centroids: `centroids` float32 [c, dim] and
    `centroid_ids` int32 [n_items] add dot(centroids[centroid_ids[i]], query) to item i's score.

    Build it with `from_array` (checks values) or `quantize`; `dtype` names the storage.
    """

    data: np.ndarray
    scales: np.ndarray
    dtype: str
    # The exact scan's layout: panels[t] = data[t*T:(t+1)*T].T, [n_tiles, dim, T] (T =
    # PANEL_ROWS, zero rows pad the last): items sit in SIMD lanes without a per-call transpose.
    # Built by from_array / quantize; a second copy of the items (the row copy serves IVF).
    panels: np.ndarray | None = field(default=None, repr=False)
    centroids: np.ndarray | None = field(default=None, repr=False)
    centroid_ids: np.ndarray | None = field(default=None, repr=False)

    def query_offsets(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """(offsets float32 [b, c] = queries @ centroids.T, centroid_ids int32, used?) for the
        kernels; empty stand-ins (same dtypes, so the same compiled code) without centroids."""
        if self.centroids is None or self.centroid_ids is None:
            return np.zeros((queries.shape[0], 1), np.float32), np.zeros(0, np.int32), False
        return np.ascontiguousarray(queries @ self.centroids.T, np.float32), self.centroid_ids, True

    @property
    def n_items(self) -> int:
        return int(self.data.shape[0])

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    def to_float32(self) -> np.ndarray:
        """Dequantised float32 copy [n_items, dim]."""
        if self.dtype == "float16":
            return self.data.view(np.float16).astype(np.float32)
        out = self.data.astype(np.float32) * self.scales[:, None]
        if self.centroids is not None and self.centroid_ids is not None:
            out += self.centroids[self.centroid_ids]
        return out

    @classmethod
    def from_array(
        cls,
        items: np.ndarray,
        scales: np.ndarray | None = None,
        centroids: np.ndarray | None = None,
        centroid_ids: np.ndarray | None = None,
    ) -> ItemMatrix:
        """Wrap float32, float16 or int8 (with float32 `scales` [n], optionally residual
        `centroids` [c, dim] + `centroid_ids` [n]) items; reject NaN / inf."""
        a = np.asarray(items)
        if a.ndim != 2 or a.shape[1] == 0:
            raise ValueError(f"items: expected shape [n_items, dim], got {list(a.shape)}")
        n = a.shape[0]
        if a.dtype == np.int8:
            if scales is None:
                raise ValueError("scales: int8 items need float32 per-row scales [n_items]")
            s = np.ascontiguousarray(scales, dtype=np.float32)
            if s.shape != (n,) or not np.isfinite(s).all():
                raise ValueError(
                    f"scales: expected finite float32 [{n}], got shape {list(s.shape)}"
                )
            a = np.ascontiguousarray(a)
            c, ids = _check_centroids(n, a.shape[1], centroids, centroid_ids)
            return cls(a, s, "int8", to_panels(a), c, ids)
        if scales is not None or centroids is not None or centroid_ids is not None:
            raise ValueError("scales, centroids: only int8 items take them")
        if a.dtype not in (np.float32, np.float16):
            raise ValueError(f"items: expected float32, float16 or int8, got dtype {a.dtype}")
        if not np.isfinite(a).all():
            raise ValueError("items: contains NaN or infinite values")
        ones = np.ones(n, np.float32)
        a = np.ascontiguousarray(a)
        if a.dtype == np.float16:
            a = a.view(np.uint16)
        return cls(a, ones, a.dtype.name if a.dtype == np.float32 else "float16", to_panels(a))

    @classmethod
    def quantize(cls, items: np.ndarray, dtype: str, *, n_centroids: int = 256) -> ItemMatrix:
        """Store float items as `dtype`. int8 stores each item's residual to its nearest of
        `n_centroids` k-means centroids (fixed seed), with a symmetric per-row scale
        max|residual| / 127: residuals span a few times less than the items, so the rounding
        error is that much smaller (recall@100 0.984 -> see docs/performance.md). n_centroids=0
        quantizes the items themselves."""
        a = np.asarray(items, dtype=np.float32)
        if dtype == "float32":
            return cls.from_array(a)
        if dtype == "float16":
            return cls.from_array(a.astype(np.float16))
        if dtype != "int8":
            raise ValueError(f"dtype: expected one of {STORAGE_DTYPES}, got {dtype!r}")
        if a.ndim != 2 or not np.isfinite(a).all():
            raise ValueError("items: expected finite values of shape [n_items, dim]")
        centroids = ids = None
        if n_centroids > 0 and a.shape[0] > n_centroids:
            rng = np.random.default_rng(0)
            sample = a[
                np.sort(rng.choice(a.shape[0], min(a.shape[0], 32 * n_centroids), replace=False))
            ]
            centroids = kmeans(np.ascontiguousarray(sample), n_centroids, 10, 0)
            ids = assign_nearest(a, np.ones(a.shape[0], np.float32), centroids).astype(np.int32)
            a = a - centroids[ids]
        peak = np.abs(a).max(axis=1)
        scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        q = np.rint(a / scales[:, None]).clip(-127, 127).astype(np.int8)
        return cls.from_array(q, scales, centroids, ids)


def _check_centroids(
    n: int, d: int, centroids: np.ndarray | None, centroid_ids: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if centroids is None and centroid_ids is None:
        return None, None
    if centroids is None or centroid_ids is None:
        raise ValueError("centroids, centroid_ids: pass both or neither")
    c = np.ascontiguousarray(centroids, np.float32)
    ids = np.ascontiguousarray(centroid_ids, np.int32)
    if c.ndim != 2 or c.shape[1] != d or not np.isfinite(c).all():
        raise ValueError(f"centroids: expected finite float32 [n_centroids, {d}]")
    if ids.shape != (n,) or (n and (ids.min() < 0 or ids.max() >= c.shape[0])):
        raise ValueError(f"centroid_ids: expected ids in [0, {c.shape[0]}) for each of {n} items")
    return c, ids
