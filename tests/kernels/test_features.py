import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import Feature, FeatureSpec, FeatureTables, assemble_features
from kernels.feature_spec import SOURCES, TRANSFORMS

MASK64 = (1 << 64) - 1


def _hash_bucket(a: int, b: int, n: int) -> int:
    x = ((a * 0x9E3779B97F4A7C15) & MASK64) ^ b
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return (x ^ (x >> 31)) % n


def reference(spec, t, users, cptr, cids, rptr, rids, ages):  # type: ignore[no-untyped-def]
    rows = []
    for q, u in enumerate(users):
        aff = dict(
            zip(
                t.affinity_category[t.affinity_indptr[u] : t.affinity_indptr[u + 1]].tolist(),
                t.affinity_value[t.affinity_indptr[u] : t.affinity_indptr[u + 1]].tolist(),
                strict=True,
            )
        )
        recent = list(zip(rids[rptr[q] : rptr[q + 1]], ages[rptr[q] : rptr[q + 1]], strict=True))
        for i in cids[cptr[q] : cptr[q + 1]]:
            cat = int(t.item_category[i])
            row = []
            for f in spec.features:
                if f.source == "user":
                    v = t.user_features[u, f.column]
                elif f.source == "item":
                    v = t.item_features[i, f.column]
                elif f.source == "affinity":
                    v = aff.get(cat, 0.0)
                elif f.source == "price_ratio":
                    m = t.user_features[u, f.column2]
                    v = t.item_features[i, f.column] / m if m > 0 else 0.0
                elif f.source == "recent_item":
                    v = sum(2.0 ** (-a / f.half_life_s) for r, a in recent if r == i)
                elif f.source == "recent_category":
                    v = sum(
                        2.0 ** (-a / f.half_life_s) for r, a in recent if t.item_category[r] == cat
                    )
                else:
                    v = _hash_bucket(int(t.user_features[u, f.column]), cat, f.n_buckets)
                if f.transform == "log1p":
                    v = math.log1p(max(float(np.float32(v)), 0.0))
                elif f.transform == "bucketize":
                    v = sum(float(np.float32(e)) <= float(np.float32(v)) for e in f.boundaries)
                row.append(v)
            rows.append(row)
    return np.array(rows, np.float64).reshape(len(cids), spec.n_features)


@st.composite
def cases(draw):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    n_users, n_items, n_cats = draw(st.integers(1, 6)), draw(st.integers(1, 40)), 5
    user_f = rng.integers(0, 5, (n_users, 3)).astype(np.float32)
    item_f = (rng.random((n_items, 3)) * 10).astype(np.float32)
    cats = rng.integers(0, n_cats, n_items)
    aff_rows = [
        np.sort(rng.choice(n_cats, rng.integers(0, n_cats + 1), replace=False))
        for _ in range(n_users)
    ]
    tables = FeatureTables(
        user_f,
        item_f,
        cats,
        np.concatenate([[0], np.cumsum([len(r) for r in aff_rows])]),
        np.concatenate([np.zeros(0, np.int64), *aff_rows]),
        rng.random(sum(len(r) for r in aff_rows)).astype(np.float32),
    )
    feats = []
    for j in range(draw(st.integers(1, 12))):
        src = draw(st.sampled_from(SOURCES))  # every source and transform the spec knows
        tr = draw(st.sampled_from(TRANSFORMS))
        feats.append(
            Feature(
                f"f{j}",
                src,
                column=int(rng.integers(0, 3)),
                column2=int(rng.integers(0, 3)),
                half_life_s=float(rng.uniform(1, 100)),
                n_buckets=int(rng.integers(1, 50)),
                transform=tr,
                boundaries=(0.5, 2.0, 7.5) if tr == "bucketize" else (),
            )
        )
    b = draw(st.integers(0, 4))
    users = rng.integers(0, n_users, b)
    # up to 7 candidates a query, or up to 149: past the kernel's blocks of CAND_BLOCK (64)
    n_c = rng.integers(0, draw(st.sampled_from([8, 150])), b)
    n_r = rng.integers(0, 6, b)
    ages = (rng.random(int(n_r.sum())) * 50).astype(np.float32)
    return (
        FeatureSpec(tuple(feats)), tables, users,
        np.concatenate([[0], np.cumsum(n_c)]), rng.integers(0, n_items, int(n_c.sum())),
        np.concatenate([[0], np.cumsum(n_r)]), rng.integers(0, n_items, int(n_r.sum())), ages,
    )  # fmt: skip


@settings(deadline=None, max_examples=80)
@given(cases())
def test_assembly_equals_python_reference(case) -> None:  # type: ignore[no-untyped-def]
    spec, tables, users, cptr, cids, rptr, rids, ages = case
    out = np.full((len(cids), spec.n_features), np.nan, np.float32)
    assemble_features(spec, tables, users, cptr, cids, rptr, rids, ages, out)
    ref = reference(spec, tables, users, cptr, cids, rptr, rids, ages)
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=1e-5)


def test_spec_round_trips_through_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = FeatureSpec(
        (
            Feature("price", "item", column=1, transform="bucketize", boundaries=(1, 10, 100)),
            Feature("recent_cat_1h", "recent_category", half_life_s=3600),
            Feature("user_x_cat", "hash_cross", column=0, n_buckets=1024),
        )
    )
    spec.save(tmp_path / "features.json")
    assert FeatureSpec.load(tmp_path / "features.json") == spec


def test_bad_spec_and_ids_raise_naming_the_field() -> None:
    with pytest.raises(ValueError, match="source"):
        Feature("x", "nope")
    with pytest.raises(ValueError, match="half_life_s"):
        Feature("x", "recent_item")
    with pytest.raises(ValueError, match="features"):
        FeatureSpec.from_json('{"features": [{"name": "a", "source": "user", "colour": 1}]}')
    tables = FeatureTables(
        np.ones((1, 1)),
        np.ones((2, 1)),
        np.zeros(2, int),
        np.array([0, 0]),
        np.zeros(0, int),
        np.zeros(0),
    )
    spec = FeatureSpec((Feature("i", "item"),))
    out = np.empty((1, 1), np.float32)
    none = np.zeros(0, int)
    with pytest.raises(ValueError, match="candidate_ids"):
        assemble_features(spec, tables, [0], [0, 1], np.array([5]), [0, 0], none, none, out)
    with pytest.raises(ValueError, match="user_ids"):
        assemble_features(
            spec, tables, np.array([3]), [0, 1], np.array([1]), [0, 0], none, none, out
        )
    with pytest.raises(ValueError, match="out_features"):
        assemble_features(
            spec, tables, np.array([0]), [0, 1], np.array([1]), [0, 0], none, none, out.T[:0]
        )
