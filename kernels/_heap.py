"""Bounded top-k heaps over (score, id) pairs, as plain arrays for Numba.

A heap holds at most k entries in `scores[0:k]` / `ids[0:k]`; its root is the *worst* entry:
the lowest score, and among equal scores the highest id. So "better" means a higher score, or an
equal score with a lower id, and the final order (score desc, id asc) is fully deterministic.
The fill count lives in `counts[slot]` so that many heaps can share one 2-D array.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["heap_push", "heap_sorted_into", "is_better"]


@njit(inline="always", nogil=True, cache=True)
def is_better(s_a, id_a, s_b, id_b):  # type: ignore[no-untyped-def]
    """True if entry a ranks before entry b (higher score, then lower id)."""
    return s_a > s_b or (s_a == s_b and id_a < id_b)


@njit(nogil=True, cache=True)
def _sift_down(scores, ids, n, pos):  # type: ignore[no-untyped-def]
    s = scores[pos]
    e = ids[pos]
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        right = child + 1
        # pick the worse child: it must move up towards the root
        if right < n and is_better(scores[child], ids[child], scores[right], ids[right]):
            child = right
        if is_better(s, e, scores[child], ids[child]):
            scores[pos] = scores[child]
            ids[pos] = ids[child]
            pos = child
        else:
            break
    scores[pos] = s
    ids[pos] = e


@njit(nogil=True, cache=True)
def heap_push(scores, ids, count, k, s, e):  # type: ignore[no-untyped-def]
    """Offer (s, e) to a heap of capacity k holding `count` entries; return the new count.

    scores: float32[>=k], ids: int64[>=k]. The caller checks the cheap threshold first
    (`count == k and s < scores[0]`) so most items never reach this call.
    """
    if count < k:
        pos = count
        # sift up: the parent is worse than the child in a valid heap
        while pos > 0:
            parent = (pos - 1) // 2
            if is_better(scores[parent], ids[parent], s, e):
                scores[pos] = scores[parent]
                ids[pos] = ids[parent]
                pos = parent
            else:
                break
        scores[pos] = s
        ids[pos] = e
        return count + 1
    if is_better(s, e, scores[0], ids[0]):
        scores[0] = s
        ids[0] = e
        _sift_down(scores, ids, k, 0)
    return count


@njit(nogil=True, cache=True)
def heap_sorted_into(scores, ids, count, out_scores, out_ids):  # type: ignore[no-untyped-def]
    """Empty the heap into out_* (score desc, id asc); pad with -inf / -1 past `count`.

    Destroys the heap. out_scores: float32[k], out_ids: int64[k] with k >= count.
    """
    k = out_ids.shape[0]
    for j in range(count, k):
        out_scores[j] = -np.inf
        out_ids[j] = -1
    n = count
    while n > 0:
        # the root is the worst remaining entry: it goes last
        out_scores[n - 1] = scores[0]
        out_ids[n - 1] = ids[0]
        n -= 1
        scores[0] = scores[n]
        ids[0] = ids[n]
        _sift_down(scores, ids, n, 0)
