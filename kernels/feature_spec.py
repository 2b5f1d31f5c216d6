"""The feature spec: which features the ranker reads, as JSON-serialisable data.

Export writes `features.json` beside the ranker; the server reads the same file, and both call
`assemble_features` with it, so training and serving compute the same features the same way.

Sources (`Feature.source`), per (query user u, candidate item i):
- "user":            user_features[u, column]
- "item":            item_features[i, column] (popularity, price, ... are item columns)
- "affinity":        the user's affinity to the item's category (sparse table; 0 when absent)
- "price_ratio":     item_features[i, column] / user_features[u, column2] (0 if that is <= 0)
- "recent_item":     sum over the user's recent interactions with item i of 2^(-age_s / half_life_s)
- "recent_category": the same over recent interactions with items of i's category
- "hash_cross":      bucket (0..n_buckets-1) of the hashed pair (int(user_features[u, column]),
                     category[i]) as a float (an embedding index for the model)
Transforms: "identity", "log1p" (of max(x, 0)), "bucketize" (number of `boundaries` <= x).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["SOURCES", "TRANSFORMS", "CompiledSpec", "Feature", "FeatureSpec"]

SOURCES = (
    "user",
    "item",
    "affinity",
    "price_ratio",
    "recent_item",
    "recent_category",
    "hash_cross",
)
TRANSFORMS = ("identity", "log1p", "bucketize")
SPEC_VERSION = 1


@dataclass(frozen=True)
class Feature:
    name: str
    source: str
    column: int = 0
    column2: int = 0
    half_life_s: float = 0.0
    n_buckets: int = 0
    transform: str = "identity"
    boundaries: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        where = f"features[{self.name!r}]"
        if self.source not in SOURCES:
            raise ValueError(f"{where}.source: expected one of {SOURCES}, got {self.source!r}")
        if self.transform not in TRANSFORMS:
            raise ValueError(
                f"{where}.transform: expected one of {TRANSFORMS}, got {self.transform!r}"
            )
        if self.column < 0 or self.column2 < 0:
            raise ValueError(f"{where}.column: columns must be >= 0")
        if self.source.startswith("recent_") and not self.half_life_s > 0:
            raise ValueError(f"{where}.half_life_s: must be > 0 for {self.source}")
        if self.source == "hash_cross" and self.n_buckets < 1:
            raise ValueError(f"{where}.n_buckets: must be >= 1 for hash_cross")
        b = tuple(float(x) for x in self.boundaries)
        object.__setattr__(self, "boundaries", b)
        if self.transform == "bucketize" and (
            not b or any(x >= y for x, y in zip(b, b[1:], strict=False))
        ):
            raise ValueError(f"{where}.boundaries: bucketize needs strictly increasing boundaries")


@dataclass(frozen=True)
class FeatureSpec:
    features: tuple[Feature, ...]
    version: int = SPEC_VERSION
    _compiled: CompiledSpec | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        feats = tuple(f if isinstance(f, Feature) else Feature(**f) for f in self.features)
        object.__setattr__(self, "features", feats)
        if not feats:
            raise ValueError("features: the spec needs at least one feature")
        names = [f.name for f in feats]
        if len(set(names)) != len(names):
            raise ValueError("features: names must be unique")
        if self.version != SPEC_VERSION:
            raise ValueError(f"version: expected {SPEC_VERSION}, got {self.version}")
        object.__setattr__(self, "_compiled", CompiledSpec.from_features(feats))

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def compiled(self) -> CompiledSpec:
        assert self._compiled is not None
        return self._compiled

    def to_json(self) -> str:
        feats = [asdict(f) | {"boundaries": list(f.boundaries)} for f in self.features]
        return json.dumps({"version": self.version, "features": feats}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("features"), list):
            raise ValueError("features: expected a JSON object with a 'features' list")
        try:
            feats = tuple(Feature(**f) for f in data["features"])
        except TypeError as exc:
            raise ValueError(f"features: {exc}") from None
        return cls(feats, int(data.get("version", SPEC_VERSION)))

    def save(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureSpec:
        with open(path, encoding="utf-8") as fh:
            return cls.from_json(fh.read())


@dataclass(frozen=True, eq=False)
class CompiledSpec:
    """The spec as arrays for the kernel, one entry per feature: source and transform codes
    (indices into SOURCES / TRANSFORMS), columns, a float parameter (half-life or n_buckets),
    the recent-lookup slot (-1 if none), and bucket boundaries in CSR form."""

    source: np.ndarray  # int64[f]
    column: np.ndarray  # int64[f]
    column2: np.ndarray  # int64[f]
    param: np.ndarray  # float64[f]
    transform: np.ndarray  # int64[f]
    recent_slot: np.ndarray  # int64[f]
    bnd_indptr: np.ndarray  # int64[f + 1]
    bnd_values: np.ndarray  # float32
    n_recent_slots: int
    max_user_column: int
    max_item_column: int

    @classmethod
    def from_features(cls, feats: tuple[Feature, ...]) -> CompiledSpec:
        src = np.array([SOURCES.index(f.source) for f in feats], np.int64)
        param = [f.half_life_s if f.source.startswith("recent_") else f.n_buckets for f in feats]
        slots, n_slots = [], 0
        for f in feats:
            slots.append(n_slots if f.source.startswith("recent_") else -1)
            n_slots += f.source.startswith("recent_")
        user_cols = [f.column for f in feats if f.source in ("user", "hash_cross")]
        user_cols += [f.column2 for f in feats if f.source == "price_ratio"]
        item_cols = [f.column for f in feats if f.source in ("item", "price_ratio")]
        bnd = [f.boundaries if f.transform == "bucketize" else () for f in feats]
        return cls(
            src,
            np.array([f.column for f in feats], np.int64),
            np.array([f.column2 for f in feats], np.int64),
            np.array(param, np.float64),
            np.array([TRANSFORMS.index(f.transform) for f in feats], np.int64),
            np.array(slots, np.int64),
            np.concatenate([[0], np.cumsum([len(b) for b in bnd])]).astype(np.int64),
            np.array([x for b in bnd for x in b], np.float32),
            n_slots,
            max(user_cols, default=-1),
            max(item_cols, default=-1),
        )
