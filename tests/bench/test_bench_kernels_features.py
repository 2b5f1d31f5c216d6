"""The benchmark's numpy baseline of feature assembly computes what the kernel computes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

from bench.kernels_features import feature_inputs, numpy_assemble
from kernels import assemble_features
from tests.kernels.test_features import cases


def _kernel(spec, tables, user, cptr, cands, rptr, recent, ages):  # type: ignore[no-untyped-def]
    out = np.full((len(cands), spec.n_features), np.nan, np.float32)
    return assemble_features(spec, tables, user, cptr, cands, rptr, recent, ages, out)


def test_numpy_version_equals_the_kernel_on_the_benchmark_case() -> None:
    inputs = feature_inputs(5_000)
    got = numpy_assemble(*inputs)
    assert got.shape == (500, 64) and got.dtype == np.float32
    np.testing.assert_allclose(got, _kernel(*inputs), rtol=1e-5)


def test_numpy_version_equals_the_kernel_on_a_batch_of_queries() -> None:
    spec, tables, _, _, _, _, _, _ = feature_inputs(5_000)
    rng = np.random.default_rng(3)
    n_c, n_r = np.array([0, 7, 120, 1]), np.array([3, 0, 40, 2])
    user = rng.integers(0, 100_000, 4)
    cptr, rptr = np.concatenate([[0], np.cumsum(n_c)]), np.concatenate([[0], np.cumsum(n_r)])
    recent = rng.integers(0, 5_000, int(n_r.sum()))
    cands = np.concatenate([rng.integers(0, 5_000, int(n_c.sum()) - 20), recent[:20]])
    ages = rng.uniform(0, 7 * 86400, int(n_r.sum())).astype(np.float32)
    args = (spec, tables, user, cptr, cands, rptr, recent, ages)
    np.testing.assert_allclose(numpy_assemble(*args), _kernel(*args), rtol=1e-5)


@settings(deadline=None, max_examples=60)
@given(cases())
def test_numpy_version_equals_the_kernel_on_every_source_and_transform(case) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_allclose(numpy_assemble(*case), _kernel(*case), rtol=1e-5)
