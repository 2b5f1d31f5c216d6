"""SearchPipeline over the fake encoder: exact top-k by inner product, price filters, load-time
checks of its artifacts."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from server.budget import Budget
from server.errors import BadRequest, ModelLoadError, ModelNotFound
from server.pipelines.search import SearchPipeline
from server.schemas.v1 import SearchFilters, SearchRequest
from tests.server.pipelines.fakes import FakeModelSource
from tests.server.pipelines.shop import Shop


def _load(shop: Shop, models=None) -> SearchPipeline:
    return SearchPipeline.load(shop.specs["search"], shop.folder("search"), models or shop.models)


def _run(p: SearchPipeline, req: SearchRequest, budget: Budget | None = None):
    return asyncio.run(p.run(req, budget or Budget(5000)))


def test_a_title_finds_its_product_first(shop: Shop):
    p = _load(shop)
    budget = Budget(5000, request_id="r1")
    res = _run(p, SearchRequest(query="Green Lantern", k=5), budget)
    assert len(res.items) == 5 and res.degraded is False
    top = res.items[0]
    i = shop.titles.index("green lantern")
    assert (top.item_id, top.title, top.price) == (
        shop.item_ids[i],
        "green lantern",
        shop.prices[i],
    )
    assert top.score == pytest.approx(1.0, abs=1e-5)
    scores = [it.score for it in res.items]
    assert scores == sorted(scores, reverse=True)
    assert res.model_versions == {"search": "1", "search_encoder": "3"}
    assert set(budget.stages) == {"tokenize", "encode", "retrieve"}
    (call,) = shop.models["search_encoder"].calls
    assert call["input_ids"].dtype == np.int64 and call["input_ids"].shape == (1, 2)


def test_scores_are_the_inner_products(shop: Shop):
    p = _load(shop)
    res = _run(p, SearchRequest(query="red mug", k=50))
    assert len(res.items) == 50
    emb = np.load(shop.folder("search") / "product_embeddings.npy")
    q = emb[shop.titles.index("red mug")]
    want = {shop.item_ids[i]: float(emb[i] @ q) for i in range(len(emb))}
    for it in res.items:
        assert it.score == pytest.approx(want[it.item_id], abs=1e-5)


def test_price_filters(shop: Shop):
    p = _load(shop)
    res = _run(p, SearchRequest(query="candle", k=20, filters=SearchFilters(price_max=10)))
    # prices are 1..50, each once: ten items are eligible, fewer than k
    assert len(res.items) == 10 and all(it.price <= 10 for it in res.items)
    res = _run(
        p, SearchRequest(query="candle", k=20, filters=SearchFilters(price_min=5, price_max=7))
    )
    assert sorted(it.price for it in res.items) == [5, 6, 7]
    with pytest.raises(BadRequest, match="price_min"):
        _run(p, SearchRequest(query="candle", filters=SearchFilters(price_min=9, price_max=1)))


def test_unknown_words_still_answer(shop: Shop):
    res = _run(_load(shop), SearchRequest(query="zebra xylophone", k=3))
    assert len(res.items) == 3


def test_embeddings_must_match_the_catalogue(shop: Shop):
    path = shop.folder("search") / "product_embeddings.npy"
    np.save(path, np.load(path)[:-1])
    with pytest.raises(ModelLoadError, match=r"product_embeddings.npy has shape \[49, 16\]"):
        _load(shop)


def test_catalogue_files_must_agree(shop: Shop):
    (shop.folder("search") / "item_titles.json").write_text('["only one"]')
    with pytest.raises(ModelLoadError, match="differ in length"):
        _load(shop)


def test_missing_encoder_is_model_not_found(shop: Shop):
    with pytest.raises(ModelNotFound, match="search_encoder"):
        _load(shop, FakeModelSource({}))
