"""What every family's export gets: the options from the command line, and the finishing step."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from export.card import Card, GateError
from export.repository import CACHE, ModelFolder

__all__ = ["ExportOptions", "finish"]


@dataclass
class ExportOptions:
    out: Path
    quick: bool = False
    seed: int = 0
    device: str = "cpu"
    allow_regression: bool = False
    tier: str = "full"  # "preview": small models that answer within minutes; "full": the real ones
    command: str = ""
    faq: Path | None = None  # `export faq --faq FILE`: the shop's knowledge base (None: the demo's)
    refit: bool = False  # `export forecast --refit`: serve the recipe refit on all the data
    summary: list[dict] = field(default_factory=list)

    @property
    def cache(self) -> Path:
        d = self.out / CACHE / ("quick" if self.quick else self.tier) / f"seed{self.seed}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def preview(self) -> bool:
        return self.tier == "preview" and not self.quick

    def log(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)


def finish(opts: ExportOptions, folder: ModelFolder, card: Card) -> Path:
    """Write the card; publish the model if its gate passed (or regressions are allowed)."""
    card.extra.setdefault("command", opts.command)
    card.extra.setdefault("quick", opts.quick)
    card.extra.setdefault("seed", opts.seed)
    card.write(folder.dir)
    opts.summary.append(
        {
            "model": card.model,
            "metric": card.metric,
            "rows": {r.variant: r.metric for r in card.rows},
            "gate": card.gate["passed"],
        }
    )
    if not card.gate["passed"] and not opts.allow_regression:
        failed = [
            r["rule"] + f" (value {r['value']}, threshold {r['threshold']})"
            for r in card.gate["rules"]
            if r["enforced"] and not r["passed"]
        ]
        raise GateError(
            f"{card.model}: quality gate failed, model not published (kept in {folder.dir}); "
            "use --allow-regression to publish anyway:\n  - " + "\n  - ".join(failed)
        )
    path = folder.publish()
    opts.log(
        f"[{card.model}] published to {path} (gate {'passed' if card.gate['passed'] else 'FAILED, allowed'})"
    )
    return path
