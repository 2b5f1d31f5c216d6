import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import ItemMatrix, topk_inner_product

from ._reference import topk_reference


@st.composite
def problems(draw):  # type: ignore[no-untyped-def]
    """Small integer-valued problems: every sum is exact in float32, so ties are real ties."""
    n = draw(st.integers(1, 300))
    d = draw(st.integers(1, 12))
    b = draw(st.integers(1, 9))  # below and above the tiled path's threshold
    k = draw(st.integers(1, n + 5))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    items = rng.integers(-3, 4, (n, d)).astype(np.float32)
    queries = rng.integers(-3, 4, (b, d)).astype(np.float32)
    mode = draw(st.sampled_from(["none", "mask", "bitset", "nothing"]))
    eligible = np.ones(n, bool) if mode == "none" else rng.random(n) < 0.6
    if mode == "nothing":
        eligible[:] = False
    n_ex = rng.integers(0, 4, b) if draw(st.booleans()) else np.zeros(b, np.int64)
    ex = [set(rng.integers(0, n, m).tolist()) for m in n_ex]
    return items, queries, k, mode, eligible, ex


def _filter_kwargs(mode, eligible, ex):  # type: ignore[no-untyped-def]
    kw = {}
    if mode in ("mask", "nothing"):
        kw["item_mask"] = eligible
    elif mode == "bitset":
        bits = np.zeros((len(eligible) + 63) // 64 * 64, np.uint8)
        bits[: len(eligible)] = eligible
        kw["item_bitset"] = np.packbits(bits, bitorder="little").view(np.uint64)
    if any(ex):
        kw["exclude_indptr"] = np.concatenate([[0], np.cumsum([len(e) for e in ex])])
        kw["exclude_indices"] = np.array([i for e in ex for i in sorted(e)[::-1]], np.int64)
    return kw


@settings(deadline=None, max_examples=60)
@given(problems(), st.sampled_from(["float32", "float16", "int8", "int8-residual"]))
def test_exact_topk_equals_sorted_reference(problem, dtype) -> None:  # type: ignore[no-untyped-def]
    items, queries, k, mode, eligible, ex = problem
    if dtype == "int8":
        # power-of-two scales keep every product exact
        scales = np.float32(2.0) ** np.arange(len(items)) % 3
        m = ItemMatrix.from_array(items.astype(np.int8), scales.astype(np.float32))
    elif dtype == "int8-residual":
        rng = np.random.default_rng(len(items))
        centroids = rng.integers(-2, 3, (3, items.shape[1])).astype(np.float32)
        cids = rng.integers(0, 3, len(items))
        m = ItemMatrix.from_array(
            items.astype(np.int8), np.ones(len(items), np.float32), centroids, cids
        )
    else:
        m = ItemMatrix.quantize(items, dtype)
    ids, scores = topk_inner_product(queries, m, k, **_filter_kwargs(mode, eligible, ex))
    ref_ids, ref_scores = topk_reference(queries, m.to_float32(), k, eligible, ex)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


@settings(deadline=None, max_examples=25)
@given(st.integers(0, 2**31 - 1), st.integers(1, 9), st.sampled_from(["float16", "int8"]))
def test_quantized_scores_within_documented_error(seed, b, dtype) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    items = rng.standard_normal((500, 16)).astype(np.float32)
    queries = rng.standard_normal((b, 16)).astype(np.float32)
    m = ItemMatrix.quantize(items, dtype)
    ids, scores = topk_inner_product(queries, m, 20)
    exact = queries.astype(np.float64) @ items.T.astype(np.float64)
    got = np.take_along_axis(exact, ids, axis=1)
    # int8: |x - x_q| <= scale / 2 per element; float16: relative 2^-11 per element
    if dtype == "int8":
        bound = np.abs(queries).sum(1)[:, None] * (m.scales[ids] / 2)
    else:
        bound = 2.0**-11 * (np.abs(queries) @ np.abs(items).T).max(1)[:, None]
    assert (np.abs(scores - got) <= bound + 1e-4).all()


def test_k_larger_than_eligible_pads_with_minus_one() -> None:
    m = ItemMatrix.from_array(np.eye(3, dtype=np.float32))
    ids, scores = topk_inner_product(np.ones((1, 3)), m, 5, item_mask=np.array([1, 0, 1], bool))
    assert ids.tolist() == [[0, 2, -1, -1, -1]]
    assert np.isneginf(scores[0, 2:]).all()


def test_out_arrays_are_filled_in_place() -> None:
    m = ItemMatrix.from_array(np.eye(4, dtype=np.float32))
    out_ids = np.empty((2, 2), np.int64)
    out_scores = np.empty((2, 2), np.float32)
    ids, _ = topk_inner_product(np.eye(2, 4), m, 2, out_ids=out_ids, out_scores=out_scores)
    assert ids is out_ids
    assert out_ids.tolist() == [[0, 1], [1, 0]]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"queries": np.array([[np.nan, 0.0]])}, "queries"),
        ({"queries": np.zeros((1, 3))}, "queries"),
        ({"k": 0}, "k"),
        ({"k": 1001}, "k"),
        ({"item_mask": np.ones(5, bool)}, "item_mask"),
        ({"item_bitset": np.ones(2, np.uint64)}, "item_bitset"),
        ({"exclude_indptr": np.array([0, 1]), "exclude_indices": np.array([9])}, "exclude_indices"),
        ({"exclude_indptr": np.array([0, 2])}, "exclude_indices"),
        ({"out_ids": np.empty((1, 2), np.int32)}, "out_ids"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, name) -> None:  # type: ignore[no-untyped-def]
    m = ItemMatrix.from_array(np.ones((4, 2), np.float32))
    args = {"queries": np.ones((1, 2)), "items": m, "k": 2} | kwargs
    with pytest.raises(ValueError, match=name):
        topk_inner_product(**args)


def test_items_with_nan_are_rejected_once_at_construction() -> None:
    bad = np.ones((3, 2), np.float32)
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="items"):
        ItemMatrix.from_array(bad)
    with pytest.raises(ValueError, match="items"):
        topk_inner_product(np.ones((1, 2)), bad, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scales"):
        ItemMatrix.from_array(np.ones((3, 2), np.int8))


def test_thread_count_is_restored_and_checked() -> None:
    import numba

    m = ItemMatrix.from_array(np.eye(4, dtype=np.float32))
    before = numba.get_num_threads()
    a = topk_inner_product(np.ones((2, 4)), m, 3, n_threads=1)
    assert numba.get_num_threads() == before
    np.testing.assert_array_equal(a[0], topk_inner_product(np.ones((2, 4)), m, 3)[0])
    with pytest.raises(ValueError, match="n_threads"):
        topk_inner_product(np.ones((2, 4)), m, 3, n_threads=0)
