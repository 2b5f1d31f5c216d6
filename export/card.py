"""Model cards (`card.json`, `card.md`) and the quality gates the export command enforces.

Gates (issue 4): student >= 95% of the teacher's metric; quantized >= 99% of the student's (text
embeddings: mean cosine >= 0.99); every variant beats the baseline; the served student is faster
than the teacher at its endpoint's batch size on CPU. Latency is recorded in every run and gated
only in full runs: timing tiny `--quick` models is noise.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from server.contract.card import GateSummary

__all__ = [
    "Card",
    "ExportError",
    "GateError",
    "Row",
    "Rule",
    "check_gates",
    "gate_of",
    "served_variant",
    "spec_summary",
]

VARIANTS = ("baseline", "seed", "teacher", "student", "student-int8", "student-fp16")


class ExportError(RuntimeError):
    """A family cannot be built (a missing input, a failed gate); the message says why."""


class GateError(ExportError):
    """A model failed its quality gate; the message lists every failed rule."""


@dataclass
class Row:
    variant: str
    metric: float
    metrics: dict[str, float]
    params: int | None = None
    size_bytes: int | None = None
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}")


@dataclass
class Rule:
    rule: str
    value: float | None
    threshold: float | None
    passed: bool
    enforced: bool = True


def _speed_rule(
    rows: dict[str, Row], served: str, batch_key: str, min_speedup: float, quick: bool
) -> Rule | None:
    t = rows.get("teacher")
    s = rows.get(served)
    if t is None or s is None:
        return None
    tl, sl = t.latency_ms.get(batch_key), s.latency_ms.get(batch_key)
    if not tl or not sl:
        return None
    speedup = round(tl / sl, 3)
    what = f"{served} speed-up over teacher at {batch_key} on CPU >= {min_speedup}x"
    if quick:
        what += " (recorded, not gated with --quick)"
    return Rule(what, speedup, min_speedup, speedup >= min_speedup, enforced=not quick)


def _ratio_rule(rows: dict[str, Row], what: str, of: str, share: float) -> Rule | None:
    if what not in rows or of not in rows:
        return None
    ratio = rows[what].metric / max(rows[of].metric, 1e-12)
    return Rule(f"{what} metric >= {share:.0%} of {of}", round(ratio, 4), share, ratio >= share)


def _baseline_rules(rows: list[Row]) -> list[Rule]:
    base = next((r.metric for r in rows if r.variant == "baseline"), None)
    if base is None:
        return []
    return [
        Rule(f"{r.variant} beats baseline", round(r.metric, 4), round(base, 4), r.metric > base)
        for r in rows
        if r.variant != "baseline"
    ]


def gate_of(rules: list[Rule]) -> dict[str, Any]:
    """The card's `gate` object: passed when every enforced rule passed."""
    return {
        "passed": all(r.passed for r in rules if r.enforced),
        "rules": [asdict(r) for r in rules],
    }


def check_gates(
    rows: list[Row],
    *,
    served: str,
    speed_batch: str,
    min_speedup: float,
    quick: bool,
    quant_rule: Rule | None = None,
) -> dict[str, Any]:
    """The card's `gate` object. `served` is the variant the CPU endpoint loads."""
    by = {r.variant: r for r in rows}
    quant = quant_rule or _ratio_rule(by, "student-int8", "student", 0.99)
    rules = [
        r
        for r in (_ratio_rule(by, "student", "teacher", 0.95), quant, *_baseline_rules(rows))
        if r is not None
    ]
    speed = _speed_rule(by, served, speed_batch, min_speedup, quick)
    if speed is not None:
        rules.append(speed)
    return gate_of(rules)


def served_variant(rows: list[Row], speed_batch: str) -> str:
    """What the CPU endpoint loads: int8 when it keeps 99% of the student's metric and is faster
    at `speed_batch`, else the fp32 student."""
    by = {r.variant: r for r in rows}
    s, q = by["student"], by.get("student-int8")
    if q is None:
        return "student"
    ok = q.metric >= 0.99 * s.metric
    fast = q.latency_ms[speed_batch] < s.latency_ms[speed_batch]
    return "student-int8" if ok and fast else "student"


def _tensors(ts) -> list[dict[str, Any]]:
    return [{"name": t.name, "data_type": t.data_type, "dims": list(t.dims)} for t in ts]


def spec_summary(spec) -> dict[str, Any]:
    """An `export.specs.OnnxSpec` as the card records it: the served tensors and the tolerance."""
    return {
        "inputs": _tensors(spec.inputs),
        "outputs": _tensors(spec.outputs),
        "max_batch_size": spec.max_batch_size,
        "check": {"atol": spec.atol, "min_cosine": spec.min_cos},
    }


@dataclass
class Card:
    model: str
    task: str
    dataset: dict[str, Any]
    metric: str
    rows: list[Row]
    gate: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "model": self.model,
            "task": self.task,
            "dataset": self.dataset,
            "metric": self.metric,
            "rows": [asdict(r) for r in self.rows],
            "gate": self.gate,
        }
        d.update(self.extra)
        return d

    def table(self) -> str:
        keys = sorted({k for r in self.rows for k in r.metrics})
        lat = sorted(
            {k for r in self.rows for k in r.latency_ms}, key=lambda k: int(k.split("_")[1])
        )
        head = [
            "variant",
            f"{self.metric}",
            *[k for k in keys if k != self.metric],
            "params",
            "size",
            *[f"ms@{k.split('_')[1]}" for k in lat],
        ]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = [
                r.variant,
                f"{r.metric:.4f}",
                *[_fmt(r.metrics.get(k)) for k in keys if k != self.metric],
                _count(r.params),
                _size(r.size_bytes),
                *[_fmt(r.latency_ms.get(k)) for k in lat],
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def gate_lines(self) -> str:
        out = []
        for r in self.gate["rules"]:
            mark = "pass" if r["passed"] else ("FAIL" if r["enforced"] else "below (not gated)")
            out.append(f"- {mark}: {r['rule']} (value {r['value']}, threshold {r['threshold']})")
        return "\n".join(out)

    def markdown(self) -> str:
        ds = self.dataset
        cmd = self.extra.get("command", "")
        return (
            f"# {self.model}\n\n{self.task}\n\nData: {ds['name']}, {ds['rows']:,} rows; split: {ds['split']}\n\n"
            f"{self.table()}\n\nGate: {'passed' if self.gate['passed'] else 'FAILED'}\n\n{self.gate_lines()}\n\n"
            + (f"Produced by: `{cmd}`\n" if cmd else "")
        )

    def write(self, folder: Path) -> None:
        msgspec.convert(self.gate, GateSummary)  # what the server reads: fail here, not there
        (folder / "card.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        (folder / "card.md").write_text(self.markdown())


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"


def _count(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"
