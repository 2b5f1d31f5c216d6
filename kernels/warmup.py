"""Compile (or load from Numba's on-disk cache) every kernel signature the server calls (top-k
and feature assembly; IVF is a library kernel the server does not call yet, so it is not warmed)."""

from __future__ import annotations

import time

import numpy as np

from .feature_spec import Feature, FeatureSpec
from .features import (
    FeatureTables,
    _assemble_parallel,
    _assemble_serial,
    _spec_and_tables,
    assemble_features,
)
from .history import origin_features, target_features
from .items import STORAGE_DTYPES, ItemMatrix
from .topk import topk_inner_product

__all__ = ["warmup"]


def _tiny_items(dtype: str, readonly: bool) -> ItemMatrix:
    rng = np.random.default_rng(0)
    m = ItemMatrix.quantize(rng.standard_normal((64, 8)).astype(np.float32), dtype)
    if readonly:
        # items loaded with np.load(mmap_mode="r") are read-only: a distinct Numba type
        data = m.data.copy()
        data.flags.writeable = False
        assert m.panels is not None
        panels = m.panels.copy()
        panels.flags.writeable = False
        m = ItemMatrix(data, m.scales, m.dtype, panels)
    return m


def warmup() -> float:
    """Run every kernel once on tiny inputs, for each item dtype and for writeable and
    read-only item arrays; returns the seconds it took (first run compiles, later runs load
    Numba's cache).

    Numba's cache is keyed by the file of the cached function only: after an edit to a helper
    module (`_scan.py`, `_heap.py`, ...) the callers' cached code is stale. Deploy with a fresh
    cache (delete `kernels/__pycache__/*.nbi` / `*.nbc`, or a new NUMBA_CACHE_DIR per release).
    """
    t0 = time.perf_counter()
    q = np.ones((5, 8), np.float32)
    mask = np.ones(64, bool)
    ex_ptr = np.array([0, 1, 1, 1, 1, 1])
    ex_ids = np.array([3])
    for dtype in STORAGE_DTYPES:
        for readonly in (False, True):
            items = _tiny_items(dtype, readonly)
            for b in (1, 5):
                topk_inner_product(q[:b], items, 3)
            topk_inner_product(
                q, items, 3, item_mask=mask, exclude_indptr=ex_ptr, exclude_indices=ex_ids
            )
    spec = FeatureSpec(
        (
            Feature("u0", "user"),
            Feature("i0", "item", transform="log1p"),
            Feature("rc", "recent_category", half_life_s=60.0),
            Feature("b", "item", transform="bucketize", boundaries=(0.0, 1.0)),
        )
    )
    tables = FeatureTables(
        np.ones((2, 1), np.float32),
        np.ones((64, 1), np.float32),
        np.zeros(64, np.int64),
        np.array([0, 1, 1]),
        np.array([0]),
        np.array([0.5], np.float32),
    )
    out = np.empty((2, spec.n_features), np.float32)
    args = (np.array([0]), np.array([0, 2]), np.array([1, 2]), np.array([0, 1]), np.array([1]))
    assemble_features(spec, tables, *args, np.array([3.0], np.float32), out)
    # the threaded variant serves training-time calls; compile it too, directly
    for kernel in (_assemble_serial, _assemble_parallel):
        cs = spec.compiled
        kernel(  # type: ignore[call-arg]
            *_spec_and_tables(cs, tables),
            *(a.astype(np.int64) for a in args),
            np.array([3.0], np.float32),
            out,
        )
    q = np.ones((2, 40), np.float32)  # the forecast history kernel (issue 13)
    rows, origins = np.array([0, 1]), np.array([0, 39])
    _, scale = origin_features(q, q, 15000, rows, origins)
    target_features(q, 15000, rows, origins, np.array([1, 7]), scale)
    return time.perf_counter() - t0
