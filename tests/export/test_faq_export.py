"""The faq family as `shopserve export all --quick` builds it (the session's `quick_repo`): the
folders, the card (rows, metrics, gate, test set stated) and the served pipeline answering
/v1/answer in-process through the engine (real ONNX)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.cli import FAMILIES
from export.faq_data import load_entries
from export.repository import is_done
from server.contract.model_config import load_config
from server.contract.pipelines import AnswerSpec, load_pipeline_spec

pytestmark = pytest.mark.timeout(900)
VARIANTS = ["baseline", "teacher", "student", "student-int8"]
METRICS = {
    "answer recall@1",
    "intent accuracy",
    "handoff precision",
    "handoff recall",
    "handoff f1",
    "in-scope handed off",
}


@pytest.fixture(scope="module")
def faq_repo(quick_repo: Path) -> Path:
    """The faq family of the session's `export all --quick` (tests/conftest.py): built once for
    the whole suite, not again here."""
    return quick_repo


def test_the_family_publishes_its_folders(faq_repo: Path):
    assert FAMILIES["faq"][2] == ["answer_encoder", "answer"]
    assert is_done(faq_repo, FAMILIES["faq"][2])
    config = load_config(faq_repo / "answer_encoder" / "config.toml")
    assert config.name == "answer_encoder" and config.max_batch_size > 0
    assert config.parameters["variant"] in ("student", "student-int8")
    _, spec = load_pipeline_spec(faq_repo / "answer" / "pipeline.toml")
    assert isinstance(spec, AnswerSpec) and spec.encoder == "answer_encoder"
    entries = json.loads((faq_repo / "answer" / "1" / spec.entries).read_text())
    assert [e["id"] for e in entries] == [e.id for e in load_entries()]


def test_the_card(faq_repo: Path):
    card = json.loads((faq_repo / "answer_encoder" / "card.json").read_text())
    assert card["metric"] == "answer recall@3"
    rows = {r["variant"]: r for r in card["rows"]}
    assert list(rows) == VARIANTS
    for r in rows.values():
        assert 0 <= r["metric"] <= 1 and set(r["metrics"]) == METRICS
        assert r["valid_metric"] is not None  # the served variant is chosen on it
    assert card["gate"]["served"] == card["served_variant"]
    rules = " ".join(r["rule"] for r in card["gate"]["rules"])
    assert "beats baseline" in rules and ">= 95% of teacher" in rules
    md = (faq_repo / "answer_encoder" / "card.md").read_text()
    assert "Test set: 232 of the 472 held-out customer questions" in md
    assert card["corpus"]["dropped"] > 0  # entry texts equal to a held-out question: dropped


def test_the_app_answers(faq_repo: Path):
    from litestar.testing import TestClient

    from server.app import create_app
    from server.settings import Settings

    settings = Settings(model_repository=str(faq_repo), device="cpu", budgets_ms={"answer": 5000})
    _, spec = load_pipeline_spec(faq_repo / "answer" / "pipeline.toml")
    assert isinstance(spec, AnswerSpec)
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/answer", json={"question": "How can I track my order?", "k": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["answers"]) == 3 and body["intent"] in spec.intents
        assert isinstance(body["handoff"], bool) and 0 < body["confidence"] <= 1
        assert body["model_versions"] == {"answer": "1", "answer_encoder": "1"}
        r = client.post("/v1/answer", json={"question": "how?", "k": 0})
        assert r.status_code == 400 and "$.k" in r.json()["error"]
