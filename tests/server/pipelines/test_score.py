"""ScorePipeline over the fake logistic risk model: the session's features as export computes
them, the probability and its exact additive explanation."""

from __future__ import annotations

import asyncio

import msgspec
import numpy as np
import pytest

from server.budget import Budget
from server.errors import ModelLoadError
from server.pipelines.score import ScorePipeline
from server.schemas.v1 import ScoreRequest, Session
from tests.server.pipelines.shop import CATEGORICAL, NUMERIC, SESSION, VOCABS, Shop


def _load(shop: Shop) -> ScorePipeline:
    return ScorePipeline.load(shop.specs["score"], shop.folder("score"), shop.models)


def _request(**changes) -> ScoreRequest:
    return ScoreRequest(session=msgspec.convert({**SESSION, **changes}, Session))


def _run(p: ScorePipeline, req: ScoreRequest, budget: Budget | None = None):
    return asyncio.run(p.run(req, budget or Budget(5000)))


def test_the_fake_covers_every_session_field():
    assert sorted(NUMERIC + CATEGORICAL) == sorted(Session.__struct_fields__)


def test_features_follow_the_preprocessing(shop: Shop):
    p = _load(shop)
    x, cat = p.features({**SESSION, "ProductRelated": 3, "Weekend": True, "VisitorType": "Robot"})
    raw = np.array([float({**SESSION, "ProductRelated": 3, "Weekend": True}[c]) for c in NUMERIC])
    raw = np.where([c in shop.preprocess.log1p for c in NUMERIC], np.log1p(raw), raw)
    np.testing.assert_allclose(x[0], (raw - 0.5) / 2.0, rtol=1e-6)
    assert x.dtype == np.float32 and cat.dtype == np.int64
    want = [VOCABS[c].index(str(SESSION[c])) for c in CATEGORICAL]
    want[CATEGORICAL.index("VisitorType")] = 0  # an unseen category is the <unk> slot
    assert cat[0].tolist() == want


def test_probability_and_exact_explanation(shop: Shop):
    p = _load(shop)
    budget = Budget(5000)
    res = _run(p, _request(), budget)
    contribs = [e.contribution for e in res.explanation]
    assert len(contribs) == 17
    assert {e.feature for e in res.explanation} == set(NUMERIC + CATEGORICAL)
    assert [abs(c) for c in contribs] == sorted((abs(c) for c in contribs), reverse=True)
    assert res.base == -1.0 and res.threshold == 0.4
    logit = res.base + sum(contribs)
    assert res.probability == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)
    assert res.label == (res.probability >= res.threshold)
    assert res.model_versions == {"risk": "7"}
    assert {"features", "model"} <= set(budget.stages)


def test_page_value_and_november_raise_the_probability(shop: Shop):
    p = _load(shop)
    low = _run(p, _request()).probability
    high = _run(p, _request(PageValues=80.0, Month="Nov")).probability
    assert high > low and _run(p, _request(PageValues=80.0, Month="Nov")).label is True


def test_preprocessing_is_read_from_the_models_version_folder(shop: Shop):
    path = shop.models["risk"].folder / "preprocess.json"
    path.unlink()
    with pytest.raises(ModelLoadError, match=r"risk/7/preprocess.json"):
        _load(shop)
    path.write_bytes(msgspec.json.encode({**msgspec.to_builtins(shop.preprocess), "std": [1.0]}))
    with pytest.raises(ModelLoadError, match="numeric, mean and std differ in length"):
        _load(shop)
