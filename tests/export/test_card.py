"""The gate judges the served variant (issue 10): rows that are not served are reported, not
gated; speed is compared only within one runtime; lower-is-better metrics gate the other way."""

from __future__ import annotations

import msgspec
import pytest

from export.card import Row, check_gates, served_variant
from server.contract.card import GateSummary


def _rows(**metrics: float) -> list[Row]:
    return [Row(v.replace("_", "-"), m, {"m": m}) for v, m in metrics.items()]


def _rule(gate: dict, start: str) -> dict:
    return next(r for r in gate["rules"] if r["rule"].startswith(start))


def test_a_weak_seed_row_is_reported_not_gated() -> None:
    rows = _rows(baseline=0.5, seed=0.4, teacher=0.7, student=0.69)
    gate = check_gates(rows, served="student", speed_batch=None, quick=False)
    assert gate["passed"] and gate["served"] == "student" and gate["tier"] == "full"
    seed = _rule(gate, "seed beats baseline")
    assert not seed["passed"] and not seed["enforced"]


def test_the_served_variant_must_beat_the_baseline_and_keep_95_percent() -> None:
    gate = check_gates(
        _rows(baseline=0.6, teacher=0.7, student=0.58),
        served="student",
        speed_batch=None,
        quick=False,
    )
    assert not gate["passed"]
    warnings = msgspec.convert(gate, GateSummary).warnings  # what a /v1 client is told
    assert len(warnings) == 1 and "student beats baseline" in warnings[0]
    assert not _rule(gate, "student beats baseline")["passed"]
    assert not _rule(gate, "student metric >= 95% of teacher")["passed"]


def test_int8_is_gated_only_when_served() -> None:
    rows = _rows(baseline=0.5, teacher=0.7, student=0.7, student_int8=0.6)
    fp32 = check_gates(rows, served="student", speed_batch=None, quick=False)
    assert fp32["passed"]
    assert not _rule(fp32, "student-int8 metric >= 99% of student")["enforced"]
    int8 = check_gates(rows, served="student-int8", speed_batch=None, quick=False)
    assert not int8["passed"]


def test_speed_is_compared_only_in_one_runtime() -> None:
    rows = _rows(baseline=0.5, teacher=0.7, student=0.7)
    rows[1].latency_ms, rows[2].latency_ms = {"batch_1": 1.0}, {"batch_1": 2.0}
    rows[1].runtime = "sklearn"
    gate = check_gates(rows, served="student", speed_batch="batch_1", min_speedup=2, quick=False)
    assert gate["passed"] and not any("speed" in r["rule"] for r in gate["rules"])
    rows[1].runtime = "onnxruntime"
    gate = check_gates(rows, served="student", speed_batch="batch_1", min_speedup=2, quick=False)
    assert not gate["passed"]


def test_speed_is_gated_in_the_full_tier_and_recorded_in_the_preview() -> None:
    """`make serve` builds the preview while its server starts: the preview's timings share the
    cores, so its speed rule is recorded with its value and failure, never gating the preview."""
    rows = _rows(baseline=0.5, teacher=0.7, student=0.7)
    rows[1].latency_ms, rows[2].latency_ms = {"batch_1": 1.0}, {"batch_1": 2.0}
    kw = {"served": "student", "speed_batch": "batch_1", "min_speedup": 2, "quick": False}
    full = check_gates(rows, **kw, tier="full")
    preview = check_gates(rows, **kw, tier="preview")
    assert not full["passed"] and _rule(full, "student speed-up")["enforced"]
    speed = _rule(preview, "student speed-up")
    assert preview["passed"] and not speed["enforced"] and not speed["passed"]
    assert speed["value"] == 0.5 and "not gated in the preview tier" in speed["rule"]


def test_lower_is_better_metrics_gate_the_other_way() -> None:
    rows = _rows(baseline=0.40, teacher=0.30, student=0.31)  # WAPE
    gate = check_gates(rows, served="student", speed_batch=None, quick=False, lower_is_better=True)
    assert gate["passed"]
    worse = _rows(baseline=0.40, teacher=0.30, student=0.33)  # 0.30/0.33 = 0.909 < 0.95
    gate = check_gates(worse, served="student", speed_batch=None, quick=False, lower_is_better=True)
    assert not gate["passed"]


def test_the_served_variant_is_chosen_on_validation_only() -> None:
    rows = _rows(student=0.70, student_int8=0.50)  # test metrics say fp32
    for r in rows:
        r.latency_ms = {"batch_1": 2.0 if r.variant == "student" else 1.0}
    rows[0].valid_metric, rows[1].valid_metric = 0.70, 0.699  # validation says int8 keeps 99%
    assert served_variant(rows, "batch_1") == "student-int8"
    rows[1].valid_metric = None
    with pytest.raises(ValueError, match="valid_metric"):
        served_variant(rows, "batch_1")


def test_int8_is_not_served_when_it_loses_to_the_baseline_on_validation() -> None:
    rows = _rows(baseline=0.60, student=0.70, student_int8=0.70)
    for r in rows:
        r.latency_ms = {"batch_1": 2.0 if r.variant == "student" else 1.0}
    valid = {"baseline": 0.6800, "student": 0.6821, "student-int8": 0.6800}  # keeps 99.7%
    for r in rows:
        r.valid_metric = valid[r.variant]
    assert served_variant(rows, "batch_1") == "student"
    rows[2].valid_metric = 0.6810  # above the baseline again
    assert served_variant(rows, "batch_1") == "student-int8"
    rows[1].valid_metric = 0.6790  # fp32 below the baseline too: int8's own speed decides
    rows[2].valid_metric = 0.6780
    assert served_variant(rows, "batch_1") == "student-int8"


def test_an_interleaved_speed_up_replaces_the_rows_ratio() -> None:
    """The rows' medians were timed apart (1.0 / 2.0 ms: 0.5x); the paired rounds decide."""
    rows = _rows(baseline=0.5, teacher=0.7, student=0.7)
    rows[1].latency_ms, rows[2].latency_ms = {"batch_64": 1.0}, {"batch_64": 2.0}
    paired = {"median": 2.1, "q25": 2.0, "q75": 2.2}
    kw = {"served": "student", "speed_batch": "batch_64", "min_speedup": 1.0, "quick": False}
    assert not check_gates(rows, **kw)["passed"]
    gate = check_gates(rows, **kw, paired_speedup=paired)
    speed = _rule(gate, "student speed-up")
    assert gate["passed"] and speed["value"] == 2.1 and "quartiles 2.0-2.2" in speed["rule"]


def test_paired_speedup_is_the_median_of_interleaved_rounds(monkeypatch) -> None:
    """A fake clock that each call advances: the slow function 300 ns, the fast one 100 ns, and
    every fifth round the machine slows both down 4x (the ratio holds)."""
    from export import onnx_tools

    clock = {"ns": 0, "calls": 0}

    def tick(ns: int):
        def call() -> None:
            clock["calls"] += 1
            slow_phase = (clock["calls"] // 20) % 5 == 4
            clock["ns"] += ns * (4 if slow_phase else 1)

        return call

    monkeypatch.setattr(onnx_tools.time, "perf_counter_ns", lambda: clock["ns"])
    got = onnx_tools.paired_speedup(tick(300), tick(100), rounds=10, calls=10)
    assert got == {"median": 3.0, "q25": 3.0, "q75": 3.0}
