"""The forecast family as `shopserve export all --quick` builds it (the session's `quick_repo`):
the folders, the card (rows, metrics, the lower-is-better gate, the test set and quirks stated)
and the served pipeline answering /v1/forecast in-process through the engine (real ONNX) with
exactly what export's ONNX file gives for the same (item, origin)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import TestClient

from export import onnx_tools
from export.cli import FAMILIES
from export.forecast_data import HORIZON, DemandTable
from export.forecast_features import window_samples
from export.repository import is_done
from server.app import create_app
from server.contract.model_config import load_config
from server.contract.pipelines import ForecastSpec, load_pipeline_spec
from server.settings import Settings

pytestmark = pytest.mark.timeout(900)
VARIANTS = ["baseline", "teacher", "student", "student-int8"]
METRICS = {"MASE p50", "pinball p90", "coverage p90"}


def test_the_family_publishes_its_folders(quick_repo: Path):
    assert list(FAMILIES)[-1] == "forecast"
    assert FAMILIES["forecast"][2] == ["forecast_model", "forecast"]
    assert is_done(quick_repo, FAMILIES["forecast"][2])
    config = load_config(quick_repo / "forecast_model" / "config.toml")
    assert [t.name for t in config.input] == ["features", "scale"]
    assert [t.name for t in config.output] == ["p50", "p90"]
    variant = config.parameters["variant"]
    assert variant in ("student", "student-int8")
    fp32 = (quick_repo / "forecast_model" / "1" / "model_fp32.onnx").exists()
    assert fp32 == (variant == "student-int8")
    _, spec = load_pipeline_spec(quick_repo / "forecast" / "pipeline.toml")
    assert isinstance(spec, ForecastSpec) and spec.model == "forecast_model"
    assert spec.closed_weekdays == [5] and "12-25" in spec.closed_dates


def test_the_card(quick_repo: Path):
    card = json.loads((quick_repo / "forecast_model" / "card.json").read_text())
    assert card["metric"] == "WAPE p50"
    rows = {r["variant"]: r for r in card["rows"]}
    assert list(rows) == VARIANTS
    for r in rows.values():
        assert r["metric"] >= 0 and set(r["metrics"]) == METRICS
        assert r["valid_metric"] is not None  # the served variant is chosen on it
    assert rows["teacher"]["runtime"] == "sklearn"
    assert card["gate"]["served"] == card["served_variant"]
    rules = " ".join(r["rule"] for r in card["gate"]["rules"])
    assert "quality >= 95% of teacher" in rules and "beats baseline" in rules
    assert "speed-up" not in rules and "scikit-learn" in card["speed_note"]
    assert "moving average" in card["windows"]["test"]["test"]
    assert card["served_model"].startswith("the evaluated model")
    assert card["budget"]["tier"] == "quick"
    md = (quick_repo / "forecast_model" / "card.md").read_text()
    for needle in ("Saturday", "Christmas closure", "Partial last day", "non-peak"):
        assert needle in md


def _served_table(repo: Path) -> tuple[DemandTable, ForecastSpec]:
    _, spec = load_pipeline_spec(repo / "forecast" / "pipeline.toml")
    assert isinstance(spec, ForecastSpec)
    v = repo / "forecast" / "1"
    ids = json.loads((v / spec.item_ids).read_text())
    t = DemandTable(
        np.load(v / spec.quantity), np.load(v / spec.price), ids, [""] * len(ids),
        np.load(v / spec.item_category), [], spec.first_day, {},
    )  # fmt: skip
    return t, spec


def test_the_endpoint_answers_what_exports_model_answers(shop_repo: Path):
    t, _ = _served_table(shop_repo)
    start = t.n_days - HORIZON
    s = window_samples(t, start, t.first_sale())  # the card's test rows
    # the model on each row alone, as the endpoint runs it here (a batch of one): a dynamic
    # int8 model quantizes activations per batch, so a row's answer moves ~0.3% with batch-mates
    sess = onnx_tools.session(shop_repo / "forecast_model" / "1" / "model.onnx")
    closed = t.closed[start : start + HORIZON]
    settings = Settings(model_repository=str(shop_repo), device="cpu", budgets_ms={"forecast": 5e3})
    with TestClient(create_app(settings)) as c:
        for k in range(0, len(s), max(1, len(s) // 5)):
            item = t.item_ids[s.rows[k]]
            body = {"item_id": item, "horizon_days": HORIZON, "as_of": str(t.date(start - 1))}
            r = c.post("/v1/forecast", json=body)
            assert r.status_code == 200, r.text
            got = r.json()
            assert got["fallback"] is False
            assert got["model_versions"] == {"forecast": "1", "forecast_model": "1"}
            feeds = {
                "features": s.x[k : k + 1],
                "scale": s.scale[k : k + 1, None].astype(np.float32),
            }
            p50, p90 = (v[0] for v in onnx_tools.run_session(sess, feeds, batch=1))
            want50 = np.where(closed, 0, p50)
            want90 = np.maximum(np.where(closed, 0, p90), want50)
            f = got["forecasts"]
            assert [x["date"] for x in f] == [str(t.date(start + j)) for j in range(HORIZON)]
            np.testing.assert_allclose([x["p50"] for x in f], want50, atol=1e-3, rtol=1e-4)
            np.testing.assert_allclose([x["p90"] for x in f], want90, atol=1e-3, rtol=1e-4)
        last = dt.date.fromisoformat(str(t.date(t.n_days - 1)))
        r = c.post("/v1/forecast", json={"item_id": t.item_ids[0], "horizon_days": 3})
        assert r.json()["forecasts"][0]["date"] == str(last + dt.timedelta(days=1))
