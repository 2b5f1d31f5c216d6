"""Argument checks shared by the public kernel wrappers: each error names the argument."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np

__all__ = [
    "MAX_K",
    "check_exclusions",
    "check_filter",
    "check_k",
    "check_out",
    "check_queries",
    "thread_count",
]

MAX_K = 1000


def check_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    """float32 C-contiguous [b, dim] copy of queries (a copy: read-only buffers stay read-only)."""
    q = np.asarray(queries)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"queries: expected shape [batch, {dim}], got {list(np.shape(queries))}")
    if q.dtype.kind not in "fiu":
        raise ValueError(f"queries: expected a numeric array, got dtype {q.dtype}")
    out = np.array(q, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(out).all():
        raise ValueError("queries: contains NaN or infinite values")
    return out


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_K:
        raise ValueError(f"k: expected an integer in [1, {MAX_K}], got {k!r}")
    return int(k)


def check_filter(
    n_items: int, item_mask: np.ndarray | None, item_bitset: np.ndarray | None
) -> tuple[int, np.ndarray, np.ndarray]:
    """(filter_mode, mask uint8[n], bitset uint64[w]) with empty arrays for the unused one."""
    empty_mask = np.zeros(0, np.uint8)
    empty_bits = np.zeros(0, np.uint64)
    if item_mask is not None and item_bitset is not None:
        raise ValueError("item_mask, item_bitset: pass at most one of them")
    if item_mask is not None:
        m = np.asarray(item_mask)
        if m.shape != (n_items,) or m.dtype not in (np.bool_, np.uint8):
            raise ValueError(
                f"item_mask: expected bool or uint8 [{n_items}], got {m.dtype} {list(m.shape)}"
            )
        return 1, np.ascontiguousarray(m).view(np.uint8), empty_bits
    if item_bitset is not None:
        b = np.asarray(item_bitset)
        words = (n_items + 63) // 64
        if b.shape != (words,) or b.dtype != np.uint64:
            raise ValueError(
                f"item_bitset: expected uint64 [{words}] (bit i%64 of word i//64), "
                f"got {b.dtype} {list(b.shape)}"
            )
        return 2, empty_mask, np.ascontiguousarray(b)
    return 0, empty_mask, empty_bits


def check_exclusions(
    batch: int, n_items: int, indptr: np.ndarray | None, indices: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(indptr int64[batch+1], indices int64 sorted within each query's segment)."""
    if indptr is None and indices is None:
        return np.zeros(batch + 1, np.int64), np.zeros(0, np.int64)
    if indptr is None or indices is None:
        raise ValueError("exclude_indptr, exclude_indices: pass both or neither")
    p = np.asarray(indptr)
    x = np.asarray(indices)
    if p.shape != (batch + 1,) or p.dtype.kind not in "iu":
        raise ValueError(
            f"exclude_indptr: expected integer [{batch + 1}], got {p.dtype} {list(p.shape)}"
        )
    if x.ndim != 1 or x.dtype.kind not in "iu":
        raise ValueError(
            f"exclude_indices: expected a 1-D integer array, got {x.dtype} {list(x.shape)}"
        )
    p = p.astype(np.int64)
    if p[0] != 0 or p[-1] != x.shape[0] or (np.diff(p) < 0).any():
        raise ValueError(
            "exclude_indptr: must start at 0, not decrease, and end at len(exclude_indices)"
        )
    x = x.astype(np.int64)  # a copy: sorted in place below
    if x.size and (x.min() < 0 or x.max() >= n_items):
        raise ValueError(f"exclude_indices: ids must lie in [0, {n_items})")
    for q in range(batch):
        if p[q + 1] - p[q] > 1:
            x[p[q] : p[q + 1]].sort()
    return p, x


def check_out(out: np.ndarray | None, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype)
    if (
        not isinstance(out, np.ndarray)
        or out.shape != shape
        or out.dtype != dtype
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        raise ValueError(
            f"{name}: expected a writeable C-contiguous {np.dtype(dtype).name} array of shape {list(shape)}"
        )
    return out


@contextmanager
def thread_count(n_threads: int | None) -> Iterator[int]:
    """Run the body with n_threads Numba threads (thread-local in Numba); yield the count."""
    current = numba.get_num_threads()
    if n_threads is None:
        yield current
        return
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads: expected a positive integer, got {n_threads!r}")
    n = min(n_threads, numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(current)
