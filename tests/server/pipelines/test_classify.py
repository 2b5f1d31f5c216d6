"""ClassifyPipeline over fake heads: tokenise, run the task's head (split by its batch size),
softmax into labelled scores."""

from __future__ import annotations

import asyncio

import pytest

from server.budget import Budget
from server.errors import BadRequest, ModelNotFound
from server.pipelines.classify import ClassifyPipeline
from server.schemas.v1 import ClassifyRequest
from tests.server.pipelines.fakes import FakeModelSource
from tests.server.pipelines.shop import Shop


def _load(shop: Shop, models=None) -> ClassifyPipeline:
    return ClassifyPipeline.load(
        shop.specs["classify"], shop.folder("classify"), models or shop.models
    )


def _run(p: ClassifyPipeline, req: ClassifyRequest, budget: Budget | None = None):
    return asyncio.run(p.run(req, budget or Budget(5000)))


def test_each_task_labels_and_scores(shop: Shop):
    p = _load(shop)
    assert p.versions() == {"classify_sentiment": "1", "classify_recommended": "4"}
    budget = Budget(5000)
    texts = ["Love this dress, fits perfect", "Terrible quality, returned it", "okay"]
    res = _run(p, ClassifyRequest(texts=texts, task="sentiment"), budget)
    assert [r.label for r in res.results] == ["positive", "negative", "neutral"]
    for r in res.results:
        assert set(r.scores) == {"negative", "neutral", "positive"}
        assert sum(r.scores.values()) == pytest.approx(1.0, abs=1e-6)
    assert res.model_versions == {"classify_sentiment": "1"}
    assert {"tokenize", "model"} <= set(budget.stages)
    res = _run(p, ClassifyRequest(texts=["would recommend, buy again"], task="recommended"))
    assert res.results[0].label == "yes" and res.model_versions == {"classify_recommended": "4"}


def test_requests_larger_than_the_heads_batch_are_split(shop: Shop):
    p = _load(shop)
    texts = [f"review number {i} love" for i in range(10)]
    res = _run(p, ClassifyRequest(texts=texts, task="sentiment"))
    assert [r.label for r in res.results] == ["positive"] * 10
    sizes = [c["input_ids"].shape[0] for c in shop.models["classify_sentiment"].calls]
    assert sizes == [4, 4, 2]  # max_batch_size 4


def test_texts_are_truncated_to_max_tokens(shop: Shop):
    _run(_load(shop), ClassifyRequest(texts=["good " * 100], task="sentiment"))
    assert shop.models["classify_sentiment"].calls[0]["input_ids"].shape == (1, 32)


def test_unknown_task_is_a_bad_request_listing_the_tasks(shop: Shop):
    with pytest.raises(BadRequest, match=r"task: 'colour' is not served.*recommended.*sentiment"):
        _run(_load(shop), ClassifyRequest(texts=["fine"], task="colour"))


def test_a_head_whose_model_is_not_served_fails_the_load(shop: Shop):
    models = FakeModelSource(
        {k: v for k, v in shop.models.models.items() if k != "classify_recommended"}
    )
    with pytest.raises(ModelNotFound, match="classify_recommended"):
        _load(shop, models)
