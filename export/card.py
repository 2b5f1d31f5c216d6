"""Model cards (`card.json`, `card.md`) and the quality gates the export command enforces.

Gates judge what is served (issue 10): the served variant keeps >= 95% of the teacher's metric
(>= 99% of the fp32 student when it is int8) and beats the baseline; the other rows are reported
beside it, not gated; speed is gated only against a teacher timed in the same runtime. Latency is
recorded in every run and gated only in full runs: timing tiny `--quick` models is noise.
Metrics where lower is better (WAPE, pinball loss) pass `lower_is_better=True`.
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
    valid_metric: float | None = None  # the same metric on validation: what choices are made on
    runtime: str = (
        "onnxruntime"  # where latency_ms was measured (speed gates compare like runtimes)
    )

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
    rows: dict[str, Row],
    served: str,
    batch_key: str,
    min_speedup: float,
    quick: bool,
    tier: str,
    paired: dict[str, float] | None = None,
) -> Rule | None:
    """Served variant against the teacher, only when both were timed in the same runtime.
    Recorded, not gated, with --quick and in the preview tier: `make serve` builds the preview
    while its server starts and loads the first families, so the preview's timings share the
    cores (and its teachers are cut to the preview's budget); the full tier gates speed."""
    t = rows.get("teacher")
    s = rows.get(served)
    if t is None or s is None or t.runtime != s.runtime:
        return None
    tl, sl = t.latency_ms.get(batch_key), s.latency_ms.get(batch_key)
    if not tl or not sl:
        return None
    speedup = round(tl / sl, 3)
    what = f"{served} speed-up over teacher at {batch_key} in {s.runtime} >= {min_speedup}x"
    if paired is not None:  # `onnx_tools.paired_speedup`: the rows' medians were timed apart
        speedup = paired["median"]
        what += f" (interleaved rounds: median ratio, quartiles {paired['q25']}-{paired['q75']})"
    if quick:
        what += " (recorded, not gated with --quick)"
    elif tier == "preview":
        what += " (recorded, not gated in the preview tier)"
    gated = not quick and tier != "preview"
    return Rule(what, speedup, min_speedup, speedup >= min_speedup, enforced=gated)


def _share(a: float, b: float, lower_is_better: bool) -> float:
    """How much of `b`'s quality `a` keeps: a/b, or b/a when lower is better (WAPE, loss)."""
    if lower_is_better:
        return b / max(a, 1e-12)
    return a / max(b, 1e-12)


def _ratio_rule(
    rows: dict[str, Row], what: str, of: str, share: float, lower: bool, enforced: bool = True
) -> Rule | None:
    if what not in rows or of not in rows:
        return None
    ratio = _share(rows[what].metric, rows[of].metric, lower)
    kept = "quality" if lower else "metric"
    return Rule(
        f"{what} {kept} >= {share:.0%} of {of}"
        + ("" if enforced else " (reported, not gated: not served)"),
        round(ratio, 4),
        share,
        ratio >= share,
        enforced=enforced,
    )


def _baseline_rules(rows: list[Row], served: str, lower: bool) -> list[Rule]:
    """The served variant must beat the baseline; the others are reported beside it."""
    base = next((r.metric for r in rows if r.variant == "baseline"), None)
    if base is None:
        return []
    out = []
    for r in rows:
        if r.variant == "baseline":
            continue
        beats = r.metric < base if lower else r.metric > base
        gated = r.variant == served
        what = f"{r.variant} beats baseline" + ("" if gated else " (reported, not gated)")
        out.append(Rule(what, round(r.metric, 4), round(base, 4), beats, enforced=gated))
    return out


def gate_of(rules: list[Rule], *, served: str = "student", tier: str = "full") -> dict[str, Any]:
    """The card's `gate` object: passed when every enforced rule passed. `served` names the
    variant in `model.onnx`; `tier` is "full" or "preview" (a small model served first)."""
    return {
        "passed": all(r.passed for r in rules if r.enforced),
        "served": served,
        "tier": tier,
        "rules": [asdict(r) for r in rules],
    }


def check_gates(
    rows: list[Row],
    *,
    served: str,
    speed_batch: str | None,
    min_speedup: float = 1.0,
    quick: bool,
    quant_rule: Rule | None = None,
    lower_is_better: bool = False,
    tier: str = "full",
    paired_speedup: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The card's `gate` object, judging the variant that is served (issue 10):

    - `served` keeps >= 95% of the teacher's metric;
    - a quantized `served` keeps >= 99% of the fp32 student (or `quant_rule`, e.g. a cosine);
    - `served` beats the baseline; every other row is compared too, reported, not gated;
    - `served` is `min_speedup` x faster than the teacher at `speed_batch`, only when both were
      timed in the same runtime (`Row.runtime`); pass `speed_batch=None` where no teacher runs
      in the served runtime, and say so in the card; gated in the full tier only (`_speed_rule`);
      `paired_speedup` (`onnx_tools.paired_speedup` at `speed_batch`) replaces the rows' ratio;
    - whether the teacher beats its student is reported (a student above its teacher means an
      under-trained teacher: the card must explain it).
    `lower_is_better` for error metrics (WAPE, pinball loss)."""
    by = {r.variant: r for r in rows}
    lower = lower_is_better
    quantized = served in ("student-int8", "student-fp16")
    quant = quant_rule if quant_rule is not None and quantized else None
    if quant is None:
        quant = _ratio_rule(by, "student-int8", "student", 0.99, lower, enforced=quantized)
    teacher_vs_student = None
    if "teacher" in by and "student" in by:
        t, s = by["teacher"].metric, by["student"].metric
        ok = t <= s if lower else t >= s
        teacher_vs_student = Rule(
            "teacher at least as good as student (reported, not gated)",
            round(t, 4),
            round(s, 4),
            ok,
            enforced=False,
        )
    rules = [
        r
        for r in (
            _ratio_rule(by, served, "teacher", 0.95, lower),
            quant,
            *_baseline_rules(rows, served, lower),
            teacher_vs_student,
        )
        if r is not None
    ]
    if speed_batch is not None:
        speed = _speed_rule(by, served, speed_batch, min_speedup, quick, tier, paired_speedup)
        if speed is not None:
            rules.append(speed)
    return gate_of(rules, served=served, tier=tier)


def served_variant(rows: list[Row], speed_batch: str, lower_is_better: bool = False) -> str:
    """What the CPU endpoint loads, chosen on VALIDATION (`Row.valid_metric`), never on test:
    int8 when it keeps 99% of the student's validation metric and is faster at `speed_batch`,
    unless it falls to or below the baseline's validation metric where the fp32 student is
    above it (the speed is not worth the quality gate); else the fp32 student."""
    by = {r.variant: r for r in rows}
    s, q, b = by["student"], by.get("student-int8"), by.get("baseline")
    if q is None:
        return "student"
    if s.valid_metric is None or q.valid_metric is None:
        raise ValueError("served_variant needs valid_metric on the student rows (no test choices)")
    ok = _share(q.valid_metric, s.valid_metric, lower_is_better) >= 0.99
    if b is not None and b.valid_metric is not None:
        sign = -1.0 if lower_is_better else 1.0
        beats = sign * (q.valid_metric - b.valid_metric) > 0
        ok = ok and (beats or sign * (s.valid_metric - b.valid_metric) <= 0)
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
            f"{self.table()}\n\nServed variant: {self.gate.get('served', 'student')}"
            f" ({self.gate.get('tier', 'full')} tier)\n\n"
            f"Gate: {'passed' if self.gate['passed'] else 'FAILED'}\n\n{self.gate_lines()}\n\n"
            + "".join(f"## {t}\n\n{text}\n\n" for t, text in self.extra.get("sections", {}).items())
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
