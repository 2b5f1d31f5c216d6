"""SearchPipeline over the fake encoder: exact top-k by inner product, price filters, load-time
checks of its artifacts; hybrid search with a lexical index (scores = export's fused scores)."""

from __future__ import annotations

import asyncio

import msgspec
import numpy as np
import pytest

from kernels.lexical import LexicalIndex, build_bm25, build_tfidf, fuse_scores
from server.budget import Budget
from server.contract.pipelines import LexicalFiles, decode_pipeline_spec
from server.errors import BadRequest, ModelLoadError, ModelNotFound
from server.pipelines.search import SearchPipeline, top_k
from server.pipelines.text import TextEncoder
from server.schemas.v1 import SearchFilters, SearchRequest
from tests.server.pipelines.fakes import FakeModelSource
from tests.server.pipelines.shop import Shop, write_lexical_index


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


# -- hybrid: a lexical index beside the embeddings ------------------------------------------------


def _hybrid(shop: Shop, weight: float, bm25: bool = False) -> tuple[SearchPipeline, LexicalIndex]:
    index = build_bm25(shop.titles) if bm25 else build_tfidf(shop.titles)
    files = LexicalFiles(
        analyzer=index.analyzer,
        weighting=index.weighting,
        ngram_min=index.n_min,
        ngram_max=index.n_max,
    )
    write_lexical_index(shop.folder("search"), index, files)
    spec = msgspec.structs.replace(shop.specs["search"], lexical=files, lexical_weight=weight)
    return SearchPipeline.load(spec, shop.folder("search"), shop.models), index


def _fused(shop: Shop, index: LexicalIndex, query: str, weight: float) -> np.ndarray:
    """What export scores for `query`: its lexical scores fused with the encoder's inner products."""
    text = TextEncoder(shop.folder("search") / "tokenizer.json", 16)
    q = shop.models["search_encoder"].fn({"input_ids": text.ids([query])})["embedding"][0]
    emb = np.load(shop.folder("search") / "product_embeddings.npy")
    return fuse_scores(index.scores(query), emb @ q, weight)


@pytest.mark.parametrize("bm25", [False, True])
def test_hybrid_scores_are_exports_fused_scores(shop: Shop, bm25: bool):
    p, index = _hybrid(shop, 0.4, bm25)
    for query in ("white heart", "gren lantrn", "zebra"):
        res = _run(p, SearchRequest(query=query, k=50))
        want = _fused(shop, index, query, 0.4)
        assert len(res.items) == 50
        for it in res.items:
            assert it.score == pytest.approx(float(want[shop.item_ids.index(it.item_id)]), abs=1e-5)
        got = [it.score for it in res.items]
        assert got == pytest.approx(sorted(want.tolist(), reverse=True), abs=1e-5)


def test_lexical_weight_one_is_a_lexical_search_that_survives_typos(shop: Shop):
    p, _ = _hybrid(shop, 1.0)
    budget = Budget(5000)
    res = _run(p, SearchRequest(query="gren lantrn", k=3), budget)
    assert res.items[0].title == "green lantern" and res.items[0].score == pytest.approx(1.0)
    assert set(budget.stages) == {"tokenize", "encode", "lexical", "retrieve"}


def test_hybrid_price_filters(shop: Shop):
    p, _ = _hybrid(shop, 0.5)
    res = _run(p, SearchRequest(query="red mug", k=20, filters=SearchFilters(price_max=10)))
    assert len(res.items) == 10 and all(it.price <= 10 for it in res.items)
    scores = [it.score for it in res.items]
    assert scores == sorted(scores, reverse=True)


def test_top_k_keeps_catalogue_order_on_ties():
    rows, scores = top_k(np.array([0.5, 1.0, 0.5, 1.0, 0.2], np.float32), 3, None)
    assert rows.tolist() == [1, 3, 0] and scores.tolist() == [1.0, 1.0, 0.5]
    rows, _ = top_k(np.ones(4, np.float32), 10, np.array([False, True, False, True]))
    assert rows.tolist() == [1, 3]


def test_lexical_index_must_match_the_catalogue(shop: Shop):
    _hybrid(shop, 0.5)
    items = shop.folder("search") / "lexical_items.npy"
    np.save(items, np.load(items) + 7)
    spec = msgspec.structs.replace(shop.specs["search"], lexical=LexicalFiles(), lexical_weight=0.5)
    with pytest.raises(ModelLoadError, match="lexical index: postings name items outside"):
        SearchPipeline.load(spec, shop.folder("search"), shop.models)


def test_a_lexical_weight_needs_an_index():
    with pytest.raises(msgspec.ValidationError, match="needs a `lexical` index"):
        decode_pipeline_spec(
            b'name = "search"\n[spec]\nkind = "search"\nencoder = "e"\nlexical_weight = 0.5\n'
        )
