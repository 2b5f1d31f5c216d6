"""POST /v1/forecast through the real server (`shopserve serve` as a subprocess on a free
loopback port) over the quick repository: a forecast with real dates, p90 >= p50 and Saturdays
at 0, an honest back-test origin, and bad input as a 4xx naming the field, never a 500."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from server.contract.pipelines import ForecastSpec, load_pipeline_spec
from tests.e2e.serverproc import ServerProcess
from tests.e2e.test_shop_e2e import post

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(shop_repo, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("cfg") / "settings.toml"
    cfg.write_text("[budgets_ms]\nforecast = 5000\n")  # a loaded machine: no 504s here
    proc = ServerProcess(shop_repo, extra_args=["--config", str(cfg)])
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def served(shop_repo) -> tuple[list[str], ForecastSpec, int]:
    _, spec = load_pipeline_spec(shop_repo / "forecast" / "pipeline.toml")
    assert isinstance(spec, ForecastSpec)
    ids = json.loads((shop_repo / "forecast" / "1" / spec.item_ids).read_text())
    import numpy as np

    n_days = np.load(shop_repo / "forecast" / "1" / spec.quantity, mmap_mode="r").shape[1]
    return ids, spec, n_days


def test_a_forecast(server, served):
    ids, spec, n_days = served
    last = spec.first_day + dt.timedelta(days=n_days - 1)
    status, body = post(server, "/v1/forecast", {"item_id": ids[0], "horizon_days": 28})
    assert status == 200, body
    assert body["item_id"] == ids[0] and body["fallback"] is False
    assert body["model_versions"] == {"forecast": "1", "forecast_model": "1"}
    days = [dt.date.fromisoformat(f["date"]) for f in body["forecasts"]]
    assert days == [last + dt.timedelta(days=k) for k in range(1, 29)]
    for d, f in zip(days, body["forecasts"], strict=True):
        assert f["p90"] >= f["p50"] >= 0
        if d.weekday() == 5 or d.strftime("%m-%d") in spec.closed_dates:
            assert f["p50"] == f["p90"] == 0


def test_a_back_test_origin(server, served):
    ids, spec, n_days = served
    as_of = spec.first_day + dt.timedelta(days=n_days - 29)  # the card's test origin
    body = {"item_id": ids[1], "horizon_days": 7, "as_of": as_of.isoformat()}
    status, got = post(server, "/v1/forecast", body)
    assert status == 200, got
    assert got["forecasts"][0]["date"] == (as_of + dt.timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("body", "status", "needle", "code"),
    [
        ({"horizon_days": 7}, 400, "item_id", "invalid_input"),
        ({"item_id": "X", "horizon_days": 0}, 400, "$.horizon_days", "invalid_input"),
        ({"item_id": "X", "horizon_days": 29}, 400, "$.horizon_days", "invalid_input"),
        ({"item_id": "X", "horizon_days": "x"}, 400, "$.horizon_days", "invalid_input"),
        (
            {"item_id": "X", "horizon_days": 7, "as_of": "12/01/2011"},
            400,
            "$.as_of",
            "invalid_input",
        ),
        ({"item_id": "NOSUCH", "horizon_days": 7}, 404, "$.item_id", "unknown_item"),
    ],
)
def test_bad_input(server, body, status, needle, code):
    got_status, got = post(server, "/v1/forecast", body)
    assert got_status == status, got
    assert needle in got["error"] and got["code"] == code


def test_as_of_out_of_range_is_422(server, served):
    ids, _, _ = served
    for as_of in ("2009-01-01", "2031-01-01"):
        status, got = post(
            server, "/v1/forecast", {"item_id": ids[0], "horizon_days": 3, "as_of": as_of}
        )
        assert status == 422 and "$.as_of" in got["error"] and got["code"] == "out_of_range"
