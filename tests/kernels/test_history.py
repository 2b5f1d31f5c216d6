"""kernels.history: the calendar against Python's, features from columns up to the origin only,
and bad rows or origins refused by the checked wrapper."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from kernels.history import (
    LAGS,
    MIN_SCALE,
    ORIGIN_FEATURES,
    TARGET_FEATURES,
    _civil,
    _days_to_christmas,
    origin_features,
    target_features,
)

EPOCH = dt.date(1970, 1, 1)


def _day(d: dt.date) -> int:
    return (d - EPOCH).days


def test_the_calendar_is_pythons():
    for k in range(0, 3000, 7):
        d = dt.date(2009, 1, 1) + dt.timedelta(days=k)
        assert _civil(_day(d)) == (d.year, d.month, d.day)
        xmas = dt.date(d.year, 12, 25)
        if xmas < d:
            xmas = dt.date(d.year + 1, 12, 25)
        assert _days_to_christmas(_day(d)) == (xmas - d).days


def _table(n_items: int = 3, n_days: int = 150) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.poisson(4, (n_items, n_days)).astype(np.float32)
    return q, np.full_like(q, 2.0)


def test_features_read_only_up_to_the_origin():
    q, p = _table()
    day0 = _day(dt.date(2011, 1, 3))
    rows, origins = np.array([0, 1, 2]), np.array([10, 80, 149])
    x, scale = origin_features(q, p, day0, rows, origins)
    assert x.shape == (3, len(ORIGIN_FEATURES)) and x.dtype == np.float32
    for r, o in zip(rows, origins, strict=True):
        q2, p2 = q.copy(), p.copy()
        q2[:, o + 1 :], p2[:, o + 1 :] = 1e6, 1e6
        x2, s2 = origin_features(q2, p2, day0, np.array([r]), np.array([o]))
        np.testing.assert_array_equal(x2[0], x[list(rows).index(r)])
    # lag k is the origin's k-th day back, over the scale (the mean of the last 56 days)
    o = 80
    assert scale[1] == pytest.approx(max(q[1, o - 55 : o + 1].mean(), MIN_SCALE), rel=1e-5)
    np.testing.assert_allclose(x[1, :LAGS], q[1, o - np.arange(LAGS)] / scale[1], rtol=1e-5)
    wd = ORIGIN_FEATURES.index("weekday_0")
    assert x[1, wd : wd + 7].tolist() == [float(d == (dt.date(2011, 1, 3) + dt.timedelta(80)).weekday()) for d in range(7)]  # fmt: skip


def test_target_features_use_the_same_weekday_before_the_origin():
    q, p = _table()
    day0 = _day(dt.date(2011, 1, 3))
    rows, origins, ahead = np.array([0, 0]), np.array([100, 100]), np.array([1, 9])
    _, scale = origin_features(q, p, day0, rows, origins)
    z = target_features(q, day0, rows, origins, ahead, scale)
    assert z.shape == (2, len(TARGET_FEATURES))
    last = TARGET_FEATURES.index("same_weekday_last")
    assert z[0, last] == pytest.approx(q[0, 101 - 7] / scale[0])
    assert z[1, last] == pytest.approx(q[0, 109 - 14] / scale[1])


@pytest.mark.parametrize(
    ("rows", "origins", "needle"),
    [([3], [0], "rows"), ([-1], [0], "rows"), ([0], [150], "origins"), ([0, 1], [0], "shape")],
)
def test_bad_rows_and_origins_are_refused(rows, origins, needle):
    q, p = _table()
    with pytest.raises(ValueError, match=needle):
        origin_features(q, p, 0, np.array(rows), np.array(origins))


def test_ahead_must_be_positive():
    q, p = _table()
    with pytest.raises(ValueError, match="ahead"):
        target_features(q, 0, np.array([0]), np.array([5]), np.array([0]), np.ones(1))
