"""POST /v1/forecast in-process over the fake forecast shop (tests/server/pipelines/
forecast_shop.py): a forecast, the fallback, Server-Timing, and bad input as a 4xx naming the
field (400 for a malformed one, 422 for an origin outside the history, 404 unknown_item)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.settings import DEFAULT_BUDGETS_MS, Settings
from tests.server.http.helpers import assert_error
from tests.server.pipelines.forecast_shop import FIRST_DAY, N_DAYS, build_forecast_shop

LAST = FIRST_DAY + dt.timedelta(days=N_DAYS - 1)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    shop = build_forecast_shop(tmp_path_factory.mktemp("forecast_shop"))
    settings = Settings(
        model_repository=str(shop.repo), device="cpu", budgets_ms={"forecast": 5000.0}
    )
    with TestClient(create_app(settings, models=shop.models)) as c:
        yield c


def test_the_default_budget_is_20_ms():
    assert DEFAULT_BUDGETS_MS["forecast"] == 20.0
    assert Settings(model_repository="x").budgets_ms["forecast"] == 20.0


def test_forecast(client):
    r = client.post("/v1/forecast", json={"item_id": "OLD1", "horizon_days": 14})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"item_id", "forecasts", "fallback", "model_versions", "warnings"}
    assert body["item_id"] == "OLD1" and body["fallback"] is False and body["warnings"] == []
    assert body["model_versions"] == {"forecast": "1", "forecast_model": "1"}
    days = [dt.date.fromisoformat(f["date"]) for f in body["forecasts"]]
    assert days == [LAST + dt.timedelta(days=k) for k in range(1, 15)]
    for d, f in zip(days, body["forecasts"], strict=True):
        assert set(f) == {"date", "p50", "p90"}
        assert f["p90"] >= f["p50"] >= 0
        assert (f["p50"] == 0) == (d.weekday() == 5)
    assert "forecast;dur=" in r.headers["server-timing"]


def test_as_of_moves_the_origin(client):
    as_of = (FIRST_DAY + dt.timedelta(days=40)).isoformat()
    r = client.post("/v1/forecast", json={"item_id": "OLD1", "horizon_days": 1, "as_of": as_of})
    assert r.status_code == 200, r.text
    assert r.json()["forecasts"][0]["date"] == (FIRST_DAY + dt.timedelta(days=41)).isoformat()


def test_a_young_item_falls_back(client):
    r = client.post("/v1/forecast", json={"item_id": "NEW1", "horizon_days": 28})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fallback"] is True and len(body["forecasts"]) == 28
    assert all(f["p90"] >= f["p50"] for f in body["forecasts"])


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"horizon_days": 7}, 400, "item_id"),
        ({"item_id": "", "horizon_days": 7}, 400, "$.item_id"),
        ({"item_id": 7, "horizon_days": 7}, 400, "$.item_id"),
        ({"item_id": "OLD1"}, 400, "horizon_days"),
        ({"item_id": "OLD1", "horizon_days": 0}, 400, "$.horizon_days"),
        ({"item_id": "OLD1", "horizon_days": 29}, 400, "$.horizon_days"),
        ({"item_id": "OLD1", "horizon_days": "x"}, 400, "$.horizon_days"),
        ({"item_id": "OLD1", "horizon_days": 1.5}, 400, "$.horizon_days"),
        ({"item_id": "OLD1", "horizon_days": 7, "as_of": "2011/02/01"}, 400, "$.as_of"),
        ({"item_id": "OLD1", "horizon_days": 7, "as_of": "2011-02-30"}, 400, "$.as_of"),
        ({"item_id": "OLD1", "horizon_days": 7, "as_of": 20110201}, 400, "$.as_of"),
        ({"item_id": "OLD1", "horizon_days": 7, "as_of": "2010-12-31"}, 422, "$.as_of"),
        ({"item_id": "OLD1", "horizon_days": 7, "as_of": "2030-01-01"}, 422, "$.as_of"),
        ({"item_id": "OLD1", "horizon_days": 7, "budget_ms": 0}, 400, "$.budget_ms"),
        ({"item_id": "OLD1", "horizon_days": 7, "colour": "red"}, 400, "colour"),
        ({"item_id": "NOPE", "horizon_days": 7}, 404, "$.item_id"),
    ],
)
def test_bad_input_is_4xx_naming_the_field(client, body, status, needle):
    assert_error(client.post("/v1/forecast", json=body), status, needle)


def test_error_codes(client):
    r = client.post("/v1/forecast", json={"item_id": "NOPE", "horizon_days": 7})
    assert r.json()["code"] == "unknown_item"
    r = client.post(
        "/v1/forecast", json={"item_id": "OLD1", "horizon_days": 7, "as_of": "1999-01-01"}
    )
    assert r.status_code == 422 and r.json()["code"] == "out_of_range"


def test_no_forecast_pipeline_is_404(tmp_path: Path):
    (tmp_path / "repo").mkdir()
    settings = Settings(model_repository=str(tmp_path / "repo"), device="cpu")
    with TestClient(create_app(settings, models=None)) as c:
        r = c.post("/v1/forecast", json={"item_id": "OLD1", "horizon_days": 3})
        assert_error(r, 404, "forecast")
        assert r.json()["code"] == "not_found"
