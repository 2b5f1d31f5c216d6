"""The load-test figure from Locust's `<prefix>_stats_history.csv` (one row per endpoint per
second): per endpoint, latency over time with its SLO as a horizontal line, and beside it
requests/s and error rate over time. The warm-up, excluded from the summary, is shaded."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Series", "plot_report", "read_history", "report_figure"]


@dataclass
class Series:
    """One endpoint's history; every list is indexed alike (one entry per CSV row)."""

    t_s: list[float] = field(default_factory=list)  # seconds since the run's first row
    p50_ms: list[float] = field(default_factory=list)  # NaN: no answer in the window
    p95_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)  # per interval, from the running totals
    fail_per_s: list[float] = field(default_factory=list)

    @property
    def error_pct(self) -> list[float]:
        return [
            math.nan if math.isnan(r) else 100 * f / r if r > 0 else 0.0
            for f, r in zip(self.fail_per_s, self.rps, strict=True)
        ]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, whatever the environment says
    import matplotlib.pyplot as plt

    return plt


def _f(v: str | None) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _per_second(totals: list[float], t_s: list[float]) -> list[float]:
    """Rates from running totals sampled at `t_s`. A total that drops was reset (the warm-up's
    end) within the interval, whose count before the reset is lost: NaN there, a gap in the
    plot."""
    out, prev_total, prev_t = [], 0.0, None
    for total, t in zip(totals, t_s, strict=True):
        dt = t - prev_t if prev_t is not None and t > prev_t else 1.0
        out.append((total - prev_total) / dt if total >= prev_total else math.nan)
        prev_total, prev_t = (0.0 if math.isnan(total) else total), t
    return out


def read_history(prefix: Path) -> dict[str, Series]:
    """Endpoint name -> its `Series` (the `Aggregated` row is kept under that name). Rates come
    from the running totals rather than Locust's `Requests/s`, which lags by seconds and restarts
    from zero at the warm-up's reset."""
    out: dict[str, Series] = {}
    totals: dict[str, tuple[list[float], list[float]]] = {}
    t0 = None
    with open(f"{prefix}_stats_history.csv", newline="") as f:
        for r in csv.DictReader(f):
            t = _f(r["Timestamp"])
            t0 = t if t0 is None else t0
            s = out.setdefault(r["Name"], Series())
            s.t_s.append(t - t0)
            for values, key in ((s.p50_ms, "50%"), (s.p95_ms, "95%"), (s.p99_ms, "99%")):
                ms = _f(r[key])
                values.append(math.nan if ms == 0 else ms)  # 0: Locust's "none in the window"
            requests, failures = totals.setdefault(r["Name"], ([], []))
            requests.append(_f(r["Total Request Count"]))
            failures.append(_f(r["Total Failure Count"]))
    for name, s in out.items():
        requests, failures = totals[name]
        s.rps = _per_second(requests, s.t_s)
        s.fail_per_s = _per_second(failures, s.t_s)
    return out


def _latency_panel(ax: Any, name: str, s: Series, slo_p99_ms: float | None) -> None:
    for values, label in ((s.p50_ms, "p50"), (s.p95_ms, "p95"), (s.p99_ms, "p99")):
        ax.plot(s.t_s, values, label=label)
    if slo_p99_ms is not None:
        ax.axhline(slo_p99_ms, color="red", linestyle="--", label=f"SLO p99 {slo_p99_ms:g} ms")
    ax.set_title(f"{name}: latency (10 s window)")
    ax.set_ylabel("ms")
    ax.legend(loc="upper left", fontsize="small")


def _rate_panel(ax: Any, name: str, s: Series) -> None:
    ax.plot(s.t_s, s.rps, color="tab:blue", label="requests/s")
    ax.set_ylabel("requests/s")
    ax.set_title(f"{name}: throughput and errors")
    err = ax.twinx()
    err.plot(s.t_s, s.error_pct, color="tab:red", label="error rate %")
    err.set_ylabel("errors %")
    err.set_ylim(bottom=0, top=1.1 * max([1.0, *(e for e in s.error_pct if not math.isnan(e))]))
    lines = ax.get_lines() + err.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper left", fontsize="small")


def report_figure(series: dict[str, Series], slo: dict | None = None, warmup_s: float = 0.0) -> Any:
    """A matplotlib figure: one row per endpoint (sorted, `Aggregated` last, without a latency
    SLO), latency on the left with `slo[name]["p99_ms"]` drawn as a line, requests/s and error
    rate on the right."""
    plt = _pyplot()
    names = sorted(n for n in series if n != "Aggregated")
    names += ["Aggregated"] if "Aggregated" in series else []
    fig, axes = plt.subplots(
        max(1, len(names)), 2, figsize=(13, 2.8 * max(1, len(names))), squeeze=False
    )
    for row, name in zip(axes, names, strict=False):
        limits = (slo or {}).get(name) or {}
        _latency_panel(row[0], name, series[name], limits.get("p99_ms"))
        _rate_panel(row[1], name, series[name])
        if warmup_s > 0:
            for ax in row:
                ax.axvspan(0, warmup_s, color="grey", alpha=0.15)
    axes[-1, 0].set_xlabel("seconds (shaded: warm-up, not in the summary)")
    axes[-1, 1].set_xlabel("seconds")
    fig.tight_layout()
    return fig


def plot_report(prefix: Path, out: Path, slo: dict | None = None, warmup_s: float = 0.0) -> None:
    """`report_figure` of `<prefix>_stats_history.csv`, saved as `out` (PNG)."""
    fig = report_figure(read_history(prefix), slo, warmup_s)
    fig.savefig(out, dpi=90)
    _pyplot().close(fig)
