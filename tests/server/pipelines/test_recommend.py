"""RecommendPipeline over fake models: encode the history, retrieve candidates, rank them (the
fake ranker prefers cheap items), fall back to popularity, degrade to retrieval order."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from server.budget import Budget
from server.errors import ModelLoadError
from server.pipelines.recommend import RecommendPipeline
from server.schemas.v1 import RecommendFilters, RecommendRequest
from tests.server.pipelines.fakes import FakeModelSource
from tests.server.pipelines.shop import Shop


def _load(shop: Shop, models=None) -> RecommendPipeline:
    return RecommendPipeline.load(
        shop.specs["recommend"], shop.folder("recommend"), models or shop.models
    )


def _run(p: RecommendPipeline, req: RecommendRequest, budget: Budget | None = None):
    return asyncio.run(p.run(req, budget or Budget(5000)))


def retrieval(shop: Shop, rows: list[int], n: int, exclude=()) -> list[str]:
    """The retrieval order by numpy: the mean history embedding against every item."""
    user = shop.item_embeddings[rows].mean(axis=0)
    scores = shop.item_embeddings @ user
    order = [int(i) for i in np.argsort(-scores, kind="stable") if int(i) not in set(exclude)]
    return [shop.item_ids[i] for i in order[:n]]


def test_history_is_encoded_retrieved_and_ranked(shop: Shop):
    p = _load(shop)
    budget = Budget(5000)
    history = [shop.item_ids[i] for i in (3, 17, 42)]
    res = _run(p, RecommendRequest(history=history, k=5), budget)
    assert res.degraded is False and res.ignored_items == []
    assert res.model_versions == {"recommend": "1", "query_encoder": "2", "ranker": "5"}
    assert {"encode", "retrieve", "features", "rank"} <= set(budget.stages)
    (enc,) = shop.models["query_encoder"].calls
    assert enc["history"].tolist() == [[3, 17, 42]]
    # 20 candidates by retrieval (history excluded), the ranker takes the cheapest five
    candidates = retrieval(shop, [3, 17, 42], 20, exclude=(3, 17, 42))
    (rank,) = shop.models["ranker"].calls
    assert rank["features"].shape == (20, 5) and rank["retrieval_score"].shape == (20, 1)
    by_price = sorted(candidates, key=lambda c: shop.prices[shop.item_ids.index(c)])
    assert [it.item_id for it in res.items] == by_price[:5]
    scores = [it.score for it in res.items]
    assert scores == sorted(scores, reverse=True)


def test_ranker_features_use_the_users_row(shop: Shop):
    p = _load(shop)
    history = [shop.item_ids[i] for i in (0, 1)]
    _run(p, RecommendRequest(history=history, user_id="U2", k=3))
    _run(p, RecommendRequest(history=history, user_id="nobody", k=3))
    known, unknown = (c["features"] for c in shop.models["ranker"].calls)
    candidates = [shop.item_ids.index(c) for c in retrieval(shop, [0, 1], 20, exclude=(0, 1))]
    # U2 is row 2 of the tables: affinity 0.9 to category 1, nothing else; row 0 has none
    want = [0.9 if shop.item_category[c] == 1 else 0.0 for c in candidates]
    np.testing.assert_allclose(known[:, 2], want, rtol=1e-6)
    assert not unknown[:, 2].any()


def test_max_history_keeps_the_newest(shop: Shop):
    p = _load(shop)
    history = [shop.item_ids[i] for i in range(15)]
    _run(p, RecommendRequest(history=history, k=3))
    assert shop.models["query_encoder"].calls[0]["history"].tolist() == [list(range(5, 15))]


def test_unknown_history_falls_back_to_popularity(shop: Shop):
    p = _load(shop)
    budget = Budget(5000)
    res = _run(p, RecommendRequest(history=["nope-1", "nope-2"], k=5), budget)
    assert res.ignored_items == ["nope-1", "nope-2"] and res.degraded is False
    popular = [shop.item_ids[i] for i in np.argsort(-shop.popularity, kind="stable")[:5]]
    assert [it.item_id for it in res.items] == popular
    assert res.model_versions == {"recommend": "1"}
    assert shop.models["query_encoder"].calls == [] and "popularity" in budget.stages
    empty = _run(p, RecommendRequest(k=5))
    assert [it.item_id for it in empty.items] == popular
    cheap = _run(p, RecommendRequest(k=50, filters=RecommendFilters(price_max=8)))
    assert len(cheap.items) == 8 and all(it.price <= 8 for it in cheap.items)
    pops = [shop.popularity[shop.item_ids.index(it.item_id)] for it in cheap.items]
    assert pops == sorted(pops, reverse=True)


def test_filters_and_exclusions(shop: Shop):
    p = _load(shop)
    history = [shop.item_ids[i] for i in (3, 17)]
    res = _run(p, RecommendRequest(history=history, k=50))
    assert len(res.items) == 48  # k above `candidates` retrieves k: every item but the history
    assert not set(history) & {it.item_id for it in res.items}
    kept = _run(
        p,
        RecommendRequest(
            history=history, k=50, filters=RecommendFilters(exclude_history=False, price_max=10)
        ),
    )
    assert len(kept.items) == 10 and all(it.price <= 10 for it in kept.items)


def test_ranker_not_served_answers_in_retrieval_order(shop: Shop):
    models = FakeModelSource({k: v for k, v in shop.models.models.items() if k != "ranker"})
    p = _load(shop, models)
    assert p.ranking is None
    res = _run(p, RecommendRequest(history=[shop.item_ids[7]], k=5))
    assert res.degraded is True
    assert [it.item_id for it in res.items] == retrieval(shop, [7], 5, exclude=(7,))
    assert res.model_versions == {"recommend": "1", "query_encoder": "2"}


def test_ranking_that_cannot_fit_the_budget_is_skipped(shop: Shop):
    p = _load(shop)
    shop.models["ranker"].ns_per_row = 10**12  # "a thousand seconds per row"
    budget = Budget(5000)
    res = _run(p, RecommendRequest(history=[shop.item_ids[7]], k=5), budget)
    assert res.degraded is True and "rank" not in budget.stages
    assert shop.models["ranker"].calls == []
    assert [it.item_id for it in res.items] == retrieval(shop, [7], 5, exclude=(7,))


def test_ranker_past_its_deadline_degrades_never_fails(shop: Shop):
    p = _load(shop)
    shop.models["ranker"].delay_s = 5.0
    res = _run(p, RecommendRequest(history=[shop.item_ids[7]], k=5), Budget(300))
    assert res.degraded is True and len(res.items) == 5


def test_broken_ranking_artifacts_fail_the_load(shop: Shop):
    (shop.models["ranker"].folder / "features.json").unlink()
    with pytest.raises(ModelLoadError, match="ranker/5: ranking artifacts"):
        _load(shop)


def test_popularity_is_read_from_its_artifact(shop: Shop):
    np.save(shop.folder("recommend") / "popularity.npy", np.arange(50, dtype=np.float64))
    res = _run(_load(shop), RecommendRequest(k=3))
    assert [it.item_id for it in res.items] == shop.item_ids[-1:-4:-1]
