"""Reading Locust's CSV output: the summary table, SLO checks, and the latency-over-time plot."""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EndpointStats", "check_slo", "plot_latency", "read_stats", "render_table"]


@dataclass
class EndpointStats:
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def _f(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def read_stats(prefix: Path) -> list[EndpointStats]:
    rows = []
    with open(f"{prefix}_stats.csv", newline="") as f:
        for r in csv.DictReader(f):
            rows.append(
                EndpointStats(
                    name=r["Name"],
                    requests=int(r["Request Count"]),
                    failures=int(r["Failure Count"]),
                    rps=_f(r["Requests/s"]),
                    p50_ms=_f(r["50%"]),
                    p95_ms=_f(r["95%"]),
                    p99_ms=_f(r["99%"]),
                )
            )
    return rows


def render_table(rows: list[EndpointStats]) -> str:
    head = f"{'endpoint':<16}{'requests':>10}{'fail':>7}{'err%':>7}{'rps':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.name:<16}{r.requests:>10}{r.failures:>7}{100 * r.error_rate:>6.2f}%{r.rps:>9.1f}"
            f"{r.p50_ms:>9.0f}{r.p95_ms:>9.0f}{r.p99_ms:>9.0f}"
        )
    return "\n".join(lines)


def check_slo(rows: list[EndpointStats], slo_file: Path) -> list[str]:
    """Violations of an SLO file: TOML, one table per endpoint with `p50_ms`, `p95_ms`, `p99_ms`,
    `error_rate` (fraction) and `min_requests`. An endpoint named in the file but never called is
    a violation too."""
    slo = tomllib.loads(Path(slo_file).read_text())
    by_name = {r.name: r for r in rows}
    problems = []
    for endpoint, limits in slo.items():
        if not isinstance(limits, dict):
            problems.append(f"{slo_file}: `{endpoint}` must be a table")
            continue
        r = by_name.get(endpoint)
        if r is None or r.requests == 0:
            problems.append(f"{endpoint}: no requests were made")
            continue
        for key, limit in limits.items():
            if key == "error_rate":
                if r.error_rate > limit:
                    problems.append(f"{endpoint}: error rate {r.error_rate:.4f} > {limit}")
            elif key == "min_requests":
                if r.requests < limit:
                    problems.append(f"{endpoint}: {r.requests} requests < {limit}")
            elif key in ("p50_ms", "p95_ms", "p99_ms"):
                got = getattr(r, key)
                if not got <= limit:
                    problems.append(f"{endpoint}: {key} {got:.0f} > {limit}")
            else:
                problems.append(f"{slo_file}: unknown key `{endpoint}.{key}`")
    return problems


def plot_latency(prefix: Path, out: Path) -> None:
    """p50/p95/p99 over time per endpoint from `<prefix>_stats_history.csv`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[float, float, float, float]]] = {}
    with open(f"{prefix}_stats_history.csv", newline="") as f:
        for r in csv.DictReader(f):
            if (
                r["Name"] == "Aggregated"
                or r["50%"] in ("N/A", "")
                or r.get("Total Request Count") == "0"
            ):
                continue
            series.setdefault(r["Name"], []).append(
                (_f(r["Timestamp"]), _f(r["50%"]), _f(r["95%"]), _f(r["99%"]))
            )
    fig, axes = plt.subplots(
        len(series) or 1, 1, figsize=(9, 2.6 * max(1, len(series))), squeeze=False
    )
    for ax, (name, pts) in zip(axes[:, 0], sorted(series.items()), strict=False):
        t0 = pts[0][0]
        for i, label in ((1, "p50"), (2, "p95"), (3, "p99")):
            ax.plot([p[0] - t0 for p in pts], [p[i] for p in pts], label=label)
        ax.set_title(name)
        ax.set_ylabel("ms")
        ax.legend(loc="upper right")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
