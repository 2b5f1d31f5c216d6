"""Plain numpy references for the kernel tests."""

from __future__ import annotations

import numpy as np


def topk_reference(
    queries: np.ndarray,
    items_f: np.ndarray,
    k: int,
    eligible: np.ndarray,
    exclusions: list[set[int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (score desc, id asc) top-k over eligible items in float64, padded -1 / -inf."""
    b = queries.shape[0]
    ids = np.full((b, k), -1, np.int64)
    scores = np.full((b, k), -np.inf, np.float64)
    all_scores = queries.astype(np.float64) @ items_f.astype(np.float64).T
    for q in range(b):
        ok = [i for i in np.flatnonzero(eligible) if i not in exclusions[q]]
        s = all_scores[q, ok]
        order = np.lexsort((np.asarray(ok, np.int64), -s))[:k]
        ids[q, : len(order)] = np.asarray(ok, np.int64)[order]
        scores[q, : len(order)] = s[order]
    return ids, scores
