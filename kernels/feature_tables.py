"""The tables feature assembly reads (`FeatureTables`): shapes, CSR order and finite values are
checked once when they are built, not on every `features.assemble_features` call."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FeatureTables"]


@dataclass(frozen=True, eq=False)
class FeatureTables:
    """user_features float32 [n_users, u_cols]; item_features float32 [n_items, i_cols];
    item_category int64 [n_items]; affinity CSR over users: affinity_indptr int64 [n_users + 1],
    affinity_category int64 (sorted within each user), affinity_value float32."""

    user_features: np.ndarray
    item_features: np.ndarray
    item_category: np.ndarray
    affinity_indptr: np.ndarray
    affinity_category: np.ndarray
    affinity_value: np.ndarray

    def __post_init__(self) -> None:
        u = np.ascontiguousarray(self.user_features, np.float32)
        i = np.ascontiguousarray(self.item_features, np.float32)
        if u.ndim != 2 or i.ndim != 2:
            raise ValueError("user_features, item_features: expected 2-D arrays")
        cat = np.ascontiguousarray(self.item_category, np.int64)
        if cat.shape != (i.shape[0],):
            raise ValueError(f"item_category: expected int [{i.shape[0]}]")
        ptr = np.ascontiguousarray(self.affinity_indptr, np.int64)
        acat = np.ascontiguousarray(self.affinity_category, np.int64)
        aval = np.ascontiguousarray(self.affinity_value, np.float32)
        if ptr.shape != (u.shape[0] + 1,) or ptr[0] != 0 or ptr[-1] != acat.shape[0]:
            raise ValueError(f"affinity_indptr: expected CSR indptr [{u.shape[0] + 1}]")
        if acat.shape != aval.shape or (np.diff(ptr) < 0).any():
            raise ValueError("affinity_category, affinity_value: expected equal lengths")
        within = np.ones(acat.shape[0], bool)
        within[ptr[1:-1][ptr[1:-1] < acat.shape[0]]] = False
        if (np.diff(acat) <= 0)[within[1:]].any():
            raise ValueError("affinity_category: must be strictly increasing within each user")
        for name, a in (("user_features", u), ("item_features", i), ("affinity_value", aval)):
            if not np.isfinite(a).all():
                raise ValueError(f"{name}: contains NaN or infinite values")
        for name, arr in (("user_features", u), ("item_features", i), ("item_category", cat)):
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "affinity_indptr", ptr)
        object.__setattr__(self, "affinity_category", acat)
        object.__setattr__(self, "affinity_value", aval)
