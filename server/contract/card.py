"""The part of a model card (`<model>/card.json`, written by export) that the server reads: the
quality gate's verdict, shown beside the model at `/v1/pipelines` and logged at load time.

The rest of the card (data, metrics per variant, latency) is for people; the server ignores it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

__all__ = ["CARD_FILE", "GateRule", "GateSummary", "read_gate"]

CARD_FILE = "card.json"


class GateRule(msgspec.Struct, frozen=True):
    rule: str
    value: float | None
    threshold: float | None
    passed: bool
    enforced: bool = True


class GateSummary(msgspec.Struct, frozen=True):
    passed: bool
    rules: list[GateRule] = []
    served: str = "student"  # the card's variant in model.onnx
    tier: Literal["full", "preview"] = "full"  # preview: a small model served until the full one

    @property
    def failed(self) -> list[str]:
        return [r.rule for r in self.rules if r.enforced and not r.passed]

    @property
    def warnings(self) -> list[str]:
        """What a client is told in every `/v1` answer that used this model."""
        out = []
        if self.tier == "preview":
            out.append("preview model")
        if not self.passed:
            out.append("failed its quality gate: " + "; ".join(self.failed))
        return out

    def as_parameters(self) -> dict[str, str]:
        """The verdict as string parameters (V2 metadata/config, gRPC ModelConfig)."""
        return {
            "gate": "passed" if self.passed else "failed",
            "gate_failed_rules": "; ".join(self.failed),
            "served_variant": self.served,
            "tier": self.tier,
        }


class _Card(msgspec.Struct, frozen=True):  # unknown fields allowed: the card is mostly for people
    gate: GateSummary


_decoder = msgspec.json.Decoder(_Card)


def read_gate(model_folder: Path) -> GateSummary | None:
    """The gate of `model_folder/card.json`; None when there is no card (a hand-made model).
    Raises msgspec.ValidationError / DecodeError for a card that is there but malformed."""
    path = model_folder / CARD_FILE
    if not path.is_file():
        return None
    return _decoder.decode(path.read_bytes()).gate
