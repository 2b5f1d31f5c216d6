"""AnswerPipeline over the fake encoder (tests/server/pipelines/answer_shop.py): answers are the
entries of the best phrasing, scores are export's fused scores, intent and hand-off follow the
spec's head and thresholds, and broken artifacts fail at load time naming the file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from kernels.lexical import fuse_scores
from server.budget import Budget
from server.contract.pipelines import decode_pipeline_spec, encode_pipeline_spec
from server.errors import ModelLoadError, ModelNotFound
from server.pipelines.answer import AnswerPipeline, entry_scores
from server.schemas.v1 import AnswerRequest
from tests.server.pipelines.answer_shop import ENTRIES, AnswerShop, build_answer_shop
from tests.server.pipelines.fakes import FakeModelSource


@pytest.fixture
def ashop(tmp_path: Path) -> AnswerShop:
    return build_answer_shop(tmp_path)


def _load(s: AnswerShop, models=None) -> AnswerPipeline:
    return AnswerPipeline.load(s.spec, s.folder, models or s.models)


def _ask(p: AnswerPipeline, question: str, k: int = 3, budget: Budget | None = None):
    return asyncio.run(p.run(AnswerRequest(question=question, k=k), budget or Budget(5000)))


def test_a_phrasing_finds_its_entry_first(ashop: AnswerShop):
    budget = Budget(5000, request_id="r1")
    res = _ask(_load(ashop), "White candle holder", budget=budget)
    assert [a.faq_id for a in res.answers][0] == "faq-1"
    top = res.answers[0]
    assert (top.question, top.answer) == ("red candle", "A0.")
    assert len(res.answers) == 3
    scores = [a.score for a in res.answers]
    assert scores == sorted(scores, reverse=True)
    assert res.intent == "candles" and 0 < res.confidence <= 1
    assert res.handoff is False
    assert res.model_versions == {"answer": "1", "answer_encoder": "2"}
    assert set(budget.stages) == {"tokenize", "encode", "retrieve"}


def test_scores_are_exports_fused_scores(ashop: AnswerShop):
    p = _load(ashop)
    for question in ("white mug", "black clock", "red bowl warm"):
        res = _ask(p, question, k=5)
        q = ashop.embed(question)
        # export's scoring (export/faq_systems.py: entry_cosines), by hand: best phrasing per entry
        sims = ashop.phrasings @ q
        bounds = zip(ashop.indptr[:-1], ashop.indptr[1:], strict=True)
        cos = np.array([sims[a:b].max() for a, b in bounds])
        np.testing.assert_allclose(entry_scores(sims, ashop.indptr), cos, atol=1e-6)
        want = fuse_scores(ashop.index.scores(question), cos, ashop.spec.lexical_weight)
        got = {a.faq_id: a.score for a in res.answers}
        assert len(got) == 5
        for i, e in enumerate(ENTRIES):
            assert got[e["id"]] == pytest.approx(float(want[i]), abs=1e-5)


def test_an_out_of_scope_question_is_handed_off(ashop: AnswerShop):
    res = _ask(_load(ashop), "terrible poor review number")
    assert res.handoff is True
    assert len(res.answers) == 3  # answers still come: the storefront may show them to the agent


def test_an_unsure_intent_is_handed_off(tmp_path: Path):
    s = build_answer_shop(tmp_path, min_cosine=-1.0)  # no cosine threshold: confidence only
    p = _load(s)
    assert _ask(p, "red candle").handoff is False
    strict = AnswerPipeline(
        s.spec.__class__(**{**_fields(s.spec), "min_confidence": 0.999}),
        p.encoder,
        p.entries,
        p.text,
        p.lexical,
        p.own,
    )
    assert _ask(strict, "red candle").handoff is True


def _fields(spec) -> dict:
    return {f: getattr(spec, f) for f in spec.__struct_fields__}


def test_k_bounds_the_answers(ashop: AnswerShop):
    p = _load(ashop)
    assert len(_ask(p, "candle", k=1).answers) == 1
    assert len(_ask(p, "candle", k=20).answers) == len(ENTRIES)


def test_the_spec_round_trips(ashop: AnswerShop):
    name, spec = decode_pipeline_spec(encode_pipeline_spec("answer", ashop.spec))
    assert name == "answer" and spec == ashop.spec


def test_entries_and_embeddings_must_agree(ashop: AnswerShop):
    np.save(ashop.folder / "phrasing_embeddings.npy", ashop.phrasings[:-1])
    with pytest.raises(ModelLoadError, match="phrasing_embeddings.npy has shape"):
        _load(ashop)


def test_indptr_must_give_every_entry_a_phrasing(ashop: AnswerShop):
    bad = ashop.indptr.copy()
    bad[2] = bad[1]
    np.save(ashop.folder / "phrasing_indptr.npy", bad)
    with pytest.raises(ModelLoadError, match="phrasing_indptr.npy must rise"):
        _load(ashop)


def test_the_intent_head_must_fit(ashop: AnswerShop):
    np.save(ashop.folder / "intent_bias.npy", np.zeros(2, np.float32))
    with pytest.raises(ModelLoadError, match="intent head"):
        _load(ashop)


def test_entries_must_name_known_intents(ashop: AnswerShop):
    rows = json.loads((ashop.folder / "entries.json").read_text())
    rows[0]["intent"] = "weather"
    (ashop.folder / "entries.json").write_text(json.dumps(rows))
    with pytest.raises(ModelLoadError, match="weather"):
        _load(ashop)


def test_missing_encoder_is_model_not_found(ashop: AnswerShop):
    with pytest.raises(ModelNotFound, match="answer_encoder"):
        _load(ashop, FakeModelSource({}))
