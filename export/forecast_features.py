"""Training and evaluation samples of the forecast family, every feature built by the serving
kernel (`kernels.history`), so training and serving rows cannot drift.

A sample is (item row, origin column): the model sees table columns <= origin and forecasts the
`HORIZON` days after it. `origins_before(cutoff)` keeps only samples whose every target column is
< cutoff: a model trained on them never saw a column at or after the cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.forecast_data import HORIZON, MIN_HISTORY_DAYS, DemandTable
from kernels.history import origin_features, target_features

__all__ = [
    "WARMUP_DAYS",
    "Samples",
    "eligible",
    "origins_before",
    "teacher_rows",
    "window_samples",
]

WARMUP_DAYS = 56  # training origins start here: every rolling window but the longest is inside


@dataclass
class Samples:
    """Origins with their features, scale and (when known) the next HORIZON days' targets."""

    rows: np.ndarray  # int64 [n] item rows
    origins: np.ndarray  # int64 [n] origin columns
    x: np.ndarray  # float32 [n, len(ORIGIN_FEATURES)]
    scale: np.ndarray  # float32 [n]
    y: np.ndarray | None  # float32 [n, HORIZON] or None
    open: np.ndarray | None = None  # float32 [n, HORIZON]: 1 where the day ahead is open

    def __len__(self) -> int:
        return len(self.rows)


def eligible(first_sale: np.ndarray, origin: int) -> np.ndarray:
    """bool [n_items]: first sold at least MIN_HISTORY_DAYS before `origin` (else a profile)."""
    return first_sale <= origin - MIN_HISTORY_DAYS


def _targets(t: DemandTable, rows: np.ndarray, origins: np.ndarray) -> np.ndarray | None:
    if len(origins) and origins.max() + HORIZON >= t.n_days:
        return None
    cols = origins[:, None] + 1 + np.arange(HORIZON)[None, :]
    return t.quantity[rows[:, None], cols]


def samples(t: DemandTable, rows: np.ndarray, origins: np.ndarray) -> Samples:
    x, scale = origin_features(t.quantity, t.price, t.day0, rows, origins)
    ahead = origins[:, None] + 1 + np.arange(HORIZON)[None, :]
    open_ = (~t.closed[ahead]).astype(np.float32)
    return Samples(rows, origins, x, scale, _targets(t, rows, origins), open_)


def origins_before(
    t: DemandTable, cutoff: int, n: int, rng: np.random.Generator, first_sale: np.ndarray
) -> Samples:
    """`n` random (eligible item, origin) samples whose HORIZON targets all lie before `cutoff`."""
    last = cutoff - 1 - HORIZON
    start = np.maximum(first_sale + MIN_HISTORY_DAYS, WARMUP_DAYS)
    span = np.maximum(last - start + 1, 0)
    items = np.flatnonzero(span > 0)
    if not len(items):
        raise ValueError(f"no training origin before column {cutoff}")
    p = span[items] / span[items].sum()
    rows = rng.choice(items, size=n, p=p)
    origins = start[rows] + (rng.random(n) * span[rows]).astype(np.int64)
    return samples(t, rows.astype(np.int64), origins.astype(np.int64))


def window_samples(t: DemandTable, start: int, first_sale: np.ndarray) -> Samples:
    """Every eligible item at the origin `start - 1` (targets: columns start .. start + 27)."""
    origin = start - 1
    rows = np.flatnonzero(eligible(first_sale, origin)).astype(np.int64)
    return samples(t, rows, np.full(len(rows), origin, np.int64))


def teacher_rows(t: DemandTable, s: Samples, ahead: np.ndarray) -> np.ndarray:
    """float32 [n, origin + target features]: sample r's origin row with the target features of
    day `ahead[r]` (1 .. HORIZON)."""
    z = target_features(t.quantity, t.day0, s.rows, s.origins, ahead, s.scale)
    return np.concatenate([s.x, z], axis=1)


def all_horizons(t: DemandTable, s: Samples) -> np.ndarray:
    """float32 [n * HORIZON, features]: every sample at every day ahead (sample-major)."""
    rep = Samples(
        np.repeat(s.rows, HORIZON),
        np.repeat(s.origins, HORIZON),
        np.repeat(s.x, HORIZON, axis=0),
        np.repeat(s.scale, HORIZON),
        None,
    )
    return teacher_rows(t, rep, np.tile(np.arange(1, HORIZON + 1), len(s)))
