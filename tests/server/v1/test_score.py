"""/v1/score over the quick-exported additive risk student."""

from __future__ import annotations

import json

import numpy as np
import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.settings import Settings

# a loaded test machine must not turn into 504s; budgets are tested with explicit small values
GENEROUS = {"recommend": 5000.0, "search": 5000.0, "classify": 5000.0, "score": 5000.0}

SESSION = {
    "Administrative": 0,
    "Administrative_Duration": 0.0,
    "Informational": 0,
    "Informational_Duration": 0.0,
    "ProductRelated": 1,
    "ProductRelated_Duration": 0.0,
    "BounceRates": 0.2,
    "ExitRates": 0.2,
    "PageValues": 0.0,
    "SpecialDay": 0.0,
    "Month": "Feb",
    "OperatingSystems": 1,
    "Browser": 1,
    "Region": 1,
    "TrafficType": 1,
    "VisitorType": "Returning_Visitor",
    "Weekend": False,
}


@pytest.fixture(scope="module")
def client(shop_repo):
    with TestClient(
        create_app(Settings(model_repository=str(shop_repo), device="cpu", budgets_ms=GENEROUS))
    ) as c:
        yield c


def test_score_explains_exactly(client, shop_repo):
    r = client.post("/v1/score", json={"session": SESSION})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "probability",
        "label",
        "threshold",
        "base",
        "explanation",
        "model_versions",
    }
    contribs = [e["contribution"] for e in body["explanation"]]
    assert len(contribs) == 17
    assert [abs(c) for c in contribs] == sorted((abs(c) for c in contribs), reverse=True)
    logit = body["base"] + sum(contribs)
    assert body["probability"] == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)
    assert body["label"] == (body["probability"] >= body["threshold"])
    card = json.loads((shop_repo / "risk" / "card.json").read_text())
    assert body["threshold"] == card["threshold"]
    for stage in ("features", "model", "total"):
        assert f"{stage};dur=" in r.headers["server-timing"]


def test_high_page_value_raises_the_probability(client):
    low = client.post("/v1/score", json={"session": SESSION}).json()["probability"]
    high = client.post(
        "/v1/score", json={"session": {**SESSION, "PageValues": 80.0, "Month": "Nov"}}
    ).json()["probability"]
    assert high > low


@pytest.mark.parametrize(
    ("session", "needle"),
    [
        ({**SESSION, "Month": "Foo"}, "$.session.Month"),
        ({k: v for k, v in SESSION.items() if k != "Weekend"}, "Weekend"),
        ({**SESSION, "BounceRates": "x"}, "$.session.BounceRates"),
        ({**SESSION, "BounceRates": 3.0}, "$.session.BounceRates"),
        ({**SESSION, "Administrative": -1}, "$.session.Administrative"),
        ({**SESSION, "Weekend": "yes"}, "$.session.Weekend"),
        ({**SESSION, "Colour": "red"}, "Colour"),
    ],
)
def test_bad_sessions_are_400_naming_the_field(client, session, needle):
    r = client.post("/v1/score", json={"session": session})
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_nan_and_budget_errors(client):
    r = client.post("/v1/score", content=b'{"session": {"BounceRates": NaN}}')
    assert r.status_code == 400
    assert client.post("/v1/score", json={"session": SESSION, "budget_ms": 0}).status_code == 400
    r = client.post(
        "/v1/score", json={"session": SESSION}, headers={"X-Request-Timeout-Ms": "0.001"}
    )
    assert r.status_code == 504 and r.json()["code"] == "deadline_exceeded"
    unknown_visitor = client.post(
        "/v1/score", json={"session": {**SESSION, "VisitorType": "Robot"}}
    )
    assert unknown_visitor.status_code == 200  # unseen category -> the <unk> slot, documented
