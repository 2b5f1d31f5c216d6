"""The `gate` of a model's `card.json`: what the server reads of a card (and nothing else)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from server.contract.card import GateRule, GateSummary, read_gate


def _card(folder: Path, card: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def test_no_card_is_no_gate(tmp_path: Path):
    assert read_gate(tmp_path) is None


def test_gate_is_read_and_the_rest_of_the_card_ignored(tmp_path: Path):
    folder = _card(
        tmp_path / "m",
        {
            "name": "m",
            "metrics": {"accuracy": 0.9},
            "gate": {
                "passed": False,
                "rules": [
                    {"rule": "accuracy", "value": 0.9, "threshold": 0.8, "passed": True},
                    {"rule": "recall", "value": 0.1, "threshold": 0.5, "passed": False},
                    {
                        "rule": "latency",
                        "value": None,
                        "threshold": 5.0,
                        "passed": False,
                        "enforced": False,
                    },
                ],
            },
        },
    )
    gate = read_gate(folder)
    assert isinstance(gate, GateSummary) and gate.passed is False
    assert gate.rules[0] == GateRule("accuracy", 0.9, 0.8, True, True)
    assert gate.failed == ["recall"]  # a rule that is not enforced never fails the gate


def test_a_gate_without_rules_passes(tmp_path: Path):
    assert read_gate(_card(tmp_path / "m", {"gate": {"passed": True}})) == GateSummary(True, [])


@pytest.mark.parametrize(
    ("card", "needle"),
    [
        ({"name": "m"}, "gate"),
        ({"gate": {"passed": "yes"}}, "$.gate.passed"),
        ({"gate": {"passed": True, "rules": [{"rule": "x"}]}}, "$.gate.rules[0]"),
    ],
)
def test_a_malformed_gate_is_named(tmp_path: Path, card, needle):
    with pytest.raises(msgspec.ValidationError) as info:
        read_gate(_card(tmp_path / "m", card))
    assert needle in str(info.value)


def test_the_engine_reports_a_malformed_card(repo_copy: Path):
    import asyncio

    from server.engine.repository import ModelRepository

    (repo_copy / "mlp" / "card.json").write_text('{"gate": {"passed": 1}}')
    _card(repo_copy / "simple", {"gate": {"passed": False}})
    repo = ModelRepository(repo_copy, device_setting="cpu")

    async def main():
        await repo.load_all()
        rows = {r["name"]: r for r in repo.index()}
        simple = repo.get("simple")
        await repo.close()
        return rows, simple

    rows, simple = asyncio.run(main())
    assert rows["mlp"]["state"] == "UNAVAILABLE"
    assert "card.json: invalid gate" in rows["mlp"]["reason"]
    assert simple.gate == GateSummary(False, [])  # served, its card saying it failed
