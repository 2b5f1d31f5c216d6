"""/v1/score's tasks in-process: purchase_intent reads `session` (the `score` pipeline),
cancellation_risk reads `order_line` (the `score_cancellation` pipeline); the other task's field
is a 400 naming it. Over fake models first (no torch), then over the quick-built models."""

from __future__ import annotations

import numpy as np
import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.settings import Settings
from tests.server.http.helpers import assert_error
from tests.server.http.v1_checks import GENEROUS, ok
from tests.server.pipelines.order_shop import ORDER_LINE, add_order_score
from tests.server.pipelines.shop import SESSION, Shop, build_shop

N_FEATURES = 22  # 18 numeric order-line features + country, hour, weekday, month


@pytest.fixture(scope="module")
def tasks_shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    shop = build_shop(tmp_path_factory.mktemp("score_tasks"))
    add_order_score(shop)
    return shop


@pytest.fixture(scope="module")
def v1(tasks_shop: Shop):
    settings = Settings(model_repository=str(tasks_shop.repo), device="cpu", budgets_ms=GENEROUS)
    with TestClient(create_app(settings, models=tasks_shop.models)) as c:
        yield c


def _cancel(**line) -> dict:
    return {"task": "cancellation_risk", "order_line": {**ORDER_LINE, **line}}


def assert_explained(body: dict, n_features: int) -> None:
    contribs = [e["contribution"] for e in body["explanation"]]
    assert len(contribs) == n_features
    logit = body["base"] + sum(contribs)
    assert body["probability"] == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)
    assert body["label"] == (body["probability"] >= body["threshold"])


def test_the_default_task_is_purchase_intent(v1):
    for body in ({"session": SESSION}, {"task": "purchase_intent", "session": SESSION}):
        got = ok(v1.post("/v1/score", json=body))
        assert got["model_versions"] == {"risk": "7"}
        assert_explained(got, 17)


def test_cancellation_risk_answers_from_the_order_line(v1):
    r = v1.post("/v1/score", json=_cancel())
    body = ok(r)
    assert body["model_versions"] == {"cancellation_risk": "2"}
    assert body["threshold"] == 0.3
    assert_explained(body, N_FEATURES)
    assert "features;dur=" in r.headers["server-timing"]
    # an unknown customer, or none, is scored as a new one
    for line in ({"customer_id": "00000"}, {"customer_id": None}):
        assert_explained(ok(v1.post("/v1/score", json=_cancel(**line))), N_FEATURES)
    no_id = {k: v for k, v in ORDER_LINE.items() if k != "customer_id"}
    body = {"task": "cancellation_risk", "order_line": no_id}
    assert_explained(ok(v1.post("/v1/score", json=body)), N_FEATURES)


def test_a_customers_past_cancellations_raise_the_risk(v1):
    before = ok(v1.post("/v1/score", json=_cancel(invoice_time="2011-05-15T10:00:00")))
    after = ok(v1.post("/v1/score", json=_cancel(invoice_time="2011-05-25T10:00:00")))
    rate = {b["feature"]: b["contribution"] for b in after["explanation"]}
    assert (
        rate["customer_cancel_rate"]
        > {b["feature"]: b["contribution"] for b in before["explanation"]}["customer_cancel_rate"]
    )


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"task": "purchase_intent", "order_line": ORDER_LINE}, "$.order_line: not a field"),
        ({"order_line": ORDER_LINE}, "$.order_line: not a field"),
        ({"task": "cancellation_risk", "session": SESSION}, "$.session: not a field"),
        ({"task": "cancellation_risk"}, "$.order_line: required"),
        ({"task": "purchase_intent"}, "$.session: required"),
        ({"session": SESSION, "order_line": ORDER_LINE}, "$.order_line: not a field"),
        ({"task": "fraud", "session": SESSION}, "$.task"),
    ],
)
def test_the_wrong_field_for_the_task_is_400_naming_it(v1, body, needle):
    assert_error(v1.post("/v1/score", json=body), 400, needle)


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ({"invoice_time": "2011-06-01T10:30:00+01:00"}, "$.order_line.invoice_time"),
        ({"invoice_time": "yesterday"}, "$.order_line.invoice_time"),
        ({"invoice_time": "1999-12-31T23:59:59"}, "$.order_line.invoice_time"),
        ({"quantity": 0}, "$.order_line.quantity"),
        ({"quantity": 2.5}, "$.order_line.quantity"),
        ({"unit_price": 0}, "$.order_line.unit_price"),
        ({"stock_code": ""}, "$.order_line.stock_code"),
        ({"stock_code": "85123A; drop"}, "$.order_line.stock_code"),
        ({"country": "x" * 65}, "$.order_line.country"),
        ({"customer_id": 12346}, "$.order_line.customer_id"),
        # aggregates a storefront cannot know are looked up, never sent
        ({"customer_cancel_rate": 0.5}, "customer_cancel_rate"),
    ],
)
def test_bad_order_lines_are_400_naming_the_field(v1, line, needle):
    assert_error(v1.post("/v1/score", json=_cancel(**line)), 400, needle)


def test_a_missing_cancellation_pipeline_is_404_not_a_wrong_answer(tmp_path):
    shop = build_shop(tmp_path)  # no score_cancellation folder
    settings = Settings(model_repository=str(shop.repo), device="cpu", budgets_ms=GENEROUS)
    with TestClient(create_app(settings, models=shop.models)) as c:
        assert_error(c.post("/v1/score", json=_cancel()), 404, "score_cancellation")
        assert c.post("/v1/score", json={"session": SESSION}).status_code == 200
