"""POST /v1/answer in-process over the fake answer shop (tests/server/pipelines/answer_shop.py):
an answer, a hand-off, Server-Timing, bad input as a 400 naming the field, hostile questions
(Hypothesis) through the real pipeline, and a spent budget as a 504, never a 500."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from server.app import create_app
from server.settings import DEFAULT_BUDGETS_MS, Settings
from tests.server.http.helpers import assert_error
from tests.server.pipelines.answer_shop import build_answer_shop


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    return build_answer_shop(tmp_path_factory.mktemp("answer_shop"))


@pytest.fixture(scope="module")
def client(shop):
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


def test_a_budget_spent_is_504_never_500(client, shop, monkeypatch):
    """The deadline rules of the other /v1 endpoints (test_v1_routes.py), for /v1/answer."""
    monkeypatch.setattr(shop.models["answer_encoder"], "delay_s", 0.2)
    body = {"question": "green mug"}
    r = client.post("/v1/answer", json={**body, "budget_ms": 1})
    assert assert_error(r, 504)["code"] == "deadline_exceeded"  # in the queue or after it
    r = client.post("/v1/answer", json=body, headers={"X-Request-Timeout-Ms": "20"})
    assert assert_error(r, 504)["code"] == "deadline_exceeded"
    assert client.post("/v1/answer", json=body).status_code == 200  # 5 s here


@pytest.mark.parametrize("value", ["0", "-5", "0.001", "abc", "nan", "inf"])
def test_timeout_header_out_of_range_is_400(client, value):
    r = client.post(
        "/v1/answer", json={"question": "red mug"}, headers={"X-Request-Timeout-Ms": value}
    )
    assert_error(r, 400, "X-Request-Timeout-Ms")


def test_no_answer_pipeline_is_404(tmp_path: Path):
    (tmp_path / "repo").mkdir()
    settings = Settings(model_repository=str(tmp_path / "repo"), device="cpu")
    with TestClient(create_app(settings, models=None)) as c:
        assert_error(c.post("/v1/answer", json={"question": "red mug"}), 404, "answer")


def _is_text(s: str) -> bool:
    """Whether `s` is valid Unicode text (no lone surrogates: JSON may escape them)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@settings(deadline=None, max_examples=120, database=None, suppress_health_check=list(HealthCheck))
@given(question=st.text(max_size=300), k=st.integers(-2, 25))
def test_any_question_is_an_answer_or_a_400(client, question, k):
    """Hostile questions (any Unicode, control characters, lone surrogates, empty, no token the
    tokenizer knows, nothing it keeps) through the real pipeline: a 200 with at most k answers,
    or a 400 naming the field; never a 500."""
    body = json.dumps({"question": question, "k": k}).encode()
    r = client.post("/v1/answer", content=body, headers={"content-type": "application/json"})
    if not question or not _is_text(question):
        assert r.status_code == 400, r.text
    elif not (1 <= k <= 20):
        assert_error(r, 400, "$.k")
    elif r.status_code == 400:  # nothing the tokenizer keeps (this shop's adds no [CLS])
        assert not any(c.isalnum() for c in question), r.text
        assert_error(r, 400, "question")
    else:
        assert r.status_code == 200, r.text
        assert 1 <= len(r.json()["answers"]) <= k
