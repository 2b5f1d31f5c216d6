import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import ItemMatrix, IVFIndex, build_ivf, search_ivf, topk_inner_product


@settings(deadline=None, max_examples=20)
@given(
    st.integers(0, 2**31 - 1),
    st.integers(8, 400),
    st.integers(1, 8),
    st.integers(1, 9),
    st.sampled_from(["float32", "float16", "int8"]),
)
def test_ivf_with_all_lists_equals_exact(seed, n, nlist, b, dtype) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    d = 6
    items = ItemMatrix.quantize(rng.integers(-3, 4, (n, d)).astype(np.float32), dtype)
    if dtype == "int8":  # unit scales: integer data stays exact
        items = ItemMatrix.from_array(items.data, np.ones(n, np.float32))
    queries = rng.integers(-3, 4, (b, d)).astype(np.float32)
    mask = rng.random(n) < 0.7
    ex_ptr = np.arange(b + 1)
    ex_ids = rng.integers(0, n, b)
    kw = {"item_mask": mask, "exclude_indptr": ex_ptr, "exclude_indices": ex_ids}
    index = build_ivf(items, min(nlist, n), n_iter=3, seed=seed % 7)
    k = min(n, 20)
    ids, scores = search_ivf(queries, index, k, index.nlist, **kw)
    ref_ids, ref_scores = topk_inner_product(queries, items, k, **kw)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores)


def test_lists_are_contiguous_and_cover_every_item() -> None:
    rng = np.random.default_rng(0)
    items = ItemMatrix.from_array(rng.standard_normal((1000, 8)).astype(np.float32))
    index = build_ivf(items, 16)
    assert sorted(index.row_ids.tolist()) == list(range(1000))
    assert index.list_offsets[0] == 0 and index.list_offsets[-1] == 1000
    np.testing.assert_array_equal(index.items.data, items.data[index.row_ids])


def test_kmeans_finds_separated_clusters() -> None:
    rng = np.random.default_rng(1)
    centres = np.eye(8, dtype=np.float32) * 20
    pts = (centres[rng.integers(0, 8, 4000)] + rng.standard_normal((4000, 8))).astype(np.float32)
    index = build_ivf(ItemMatrix.from_array(pts), 8, n_iter=10)
    nearest = np.sort(np.abs(index.centroids[:, None, :] - centres[None]).sum(-1).min(0))
    assert (nearest < 2.5).all()  # centres are 20 apart; 64 training points per list
    # probing one list recovers most neighbours of a point drawn near a centre
    ids, _ = search_ivf(centres[:1], index, 10, 1)
    assert (pts[ids[0]].argmax(1) == 0).all()


def test_save_load_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    for dtype in ("float32", "float16", "int8"):
        index = build_ivf(
            ItemMatrix.quantize(x, dtype, **({"n_centroids": 8} if dtype == "int8" else {})), 5
        )
        path = tmp_path / f"ivf_{dtype}.npz"
        index.save(path)
        loaded = IVFIndex.load(path)
        assert loaded.items.dtype == dtype
        q = rng.standard_normal((3, 8)).astype(np.float32)
        a = search_ivf(q, index, 7, 2)
        b = search_ivf(q, loaded, 7, 2)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
