"""The card's gate is visible at serve time (issue 10 item 6): a model published with a failed
gate, or a preview, is named under `warnings` in every /v1 answer that used it, and its verdict
is in the V2 metadata's and config's `parameters`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.contract.card import GateRule, GateSummary
from server.settings import Settings
from tests.server.http.v1_checks import GENEROUS
from tests.server.pipelines.shop import SESSION, build_shop

FAILED = GateSummary(
    passed=False,
    rules=[GateRule("student beats baseline", 0.5, 0.6, passed=False)],
    served="student-int8",
)


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        (None, []),
        (GateSummary(passed=True), []),
        (FAILED, ["risk: failed its quality gate: student beats baseline"]),
        (GateSummary(passed=True, tier="preview"), ["risk: preview model"]),
    ],
)
def test_v1_answers_name_the_models_that_failed_or_are_previews(tmp_path: Path, gate, expected):
    shop = build_shop(tmp_path)
    shop.models.models["risk"].gate = gate
    settings = Settings(model_repository=str(shop.repo), device="cpu", budgets_ms=GENEROUS)
    with TestClient(create_app(settings, models=shop.models)) as c:
        r = c.post("/v1/score", json={"session": SESSION})
        assert r.status_code == 200, r.text
        assert r.json()["warnings"] == expected


def _card(folder: Path, gate: GateSummary) -> None:
    import msgspec

    (folder / "card.json").write_text(
        json.dumps({"model": folder.name, "gate": msgspec.to_builtins(gate)})
    )


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_v2_metadata_and_config_carry_the_verdict(repo_copy: Path) -> None:
    _card(repo_copy / "mlp", FAILED)
    settings = Settings(model_repository=str(repo_copy), device="cpu", load_models=["mlp"])
    records = _Records()
    logging.getLogger("shopserve.repository").addHandler(records)
    try:
        _check_verdict(settings)
    finally:
        logging.getLogger("shopserve.repository").removeHandler(records)
    assert any("failed quality gate" in m for m in records.messages)


def _check_verdict(settings: Settings) -> None:
    with TestClient(create_app(settings)) as c:
        meta = c.get("/v2/models/mlp").json()
        assert meta["parameters"] == {
            "gate": "failed",
            "gate_failed_rules": "student beats baseline",
            "served_variant": "student-int8",
            "tier": "full",
        }
        config = c.get("/v2/models/mlp/config").json()
        assert config["parameters"]["gate"] == {"string_value": "failed"}
        assert c.get("/v2/models/mlp/versions/1/config").json()["parameters"]["tier"] == {
            "string_value": "full"
        }


def test_a_model_without_a_card_has_no_verdict(demo_repo: Path) -> None:
    settings = Settings(model_repository=str(demo_repo), device="cpu", load_models=["mlp"])
    with TestClient(create_app(settings)) as c:
        assert "parameters" not in c.get("/v2/models/mlp").json()
