"""POST /v1/answer in-process over the fake answer shop (tests/server/pipelines/answer_shop.py):
an answer, a hand-off, Server-Timing, and bad input as a 400 naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.settings import DEFAULT_BUDGETS_MS, Settings
from tests.server.http.helpers import assert_error
from tests.server.pipelines.answer_shop import build_answer_shop


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    shop = build_answer_shop(tmp_path_factory.mktemp("answer_shop"))
    settings = Settings(
        model_repository=str(shop.repo), device="cpu", budgets_ms={"answer": 5000.0}
    )
    with TestClient(create_app(settings, models=shop.models)) as c:
        yield c


def test_the_default_budget_is_50_ms():
    assert DEFAULT_BUDGETS_MS["answer"] == 50.0
    assert Settings(model_repository="x").budgets_ms["answer"] == 50.0


def test_answer(client):
    r = client.post("/v1/answer", json={"question": "green mug", "k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"answers", "intent", "confidence", "handoff", "model_versions", "warnings"}
    assert body["warnings"] == []
    assert [a["faq_id"] for a in body["answers"]][0] == "faq-3"
    assert set(body["answers"][0]) == {"faq_id", "question", "answer", "score"}
    assert len(body["answers"]) == 2
    assert body["intent"] == "mugs" and body["handoff"] is False
    assert body["model_versions"] == {"answer": "1", "answer_encoder": "2"}
    assert "encode;dur=" in r.headers["server-timing"]


def test_out_of_scope_is_handed_off(client):
    r = client.post("/v1/answer", json={"question": "terrible poor review number"})
    assert r.status_code == 200, r.text
    assert r.json()["handoff"] is True


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"question": ""}, "$.question"),
        ({"question": "x" * 2001}, "$.question"),
        ({"question": "red mug", "k": 0}, "$.k"),
        ({"question": "red mug", "k": 21}, "$.k"),
        ({"question": "red mug", "colour": "red"}, "colour"),
        ({"k": 3}, "question"),
        ({"question": 7}, "$.question"),
        ({"question": "red mug", "budget_ms": 0}, "$.budget_ms"),
    ],
)
def test_bad_input_is_400_naming_the_field(client, body, needle):
    assert_error(client.post("/v1/answer", json=body), 400, needle)


def test_no_answer_pipeline_is_404(tmp_path: Path):
    (tmp_path / "repo").mkdir()
    settings = Settings(model_repository=str(tmp_path / "repo"), device="cpu")
    with TestClient(create_app(settings, models=None)) as c:
        assert_error(c.post("/v1/answer", json={"question": "red mug"}), 404, "answer")
