"""Reading Locust's summary CSV: the table and the SLO checks (the plot is in `loadtests.plot`)."""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EndpointStats",
    "check_slo",
    "load_slo",
    "read_stats",
    "render_table",
    "slo_problems",
]


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


def load_slo(slo_file: Path) -> dict[str, dict[str, float]]:
    """An SLO file: TOML, one table per endpoint with `p50_ms`, `p95_ms`, `p99_ms`, `error_rate`
    (fraction) and `min_requests`."""
    return tomllib.loads(Path(slo_file).read_text())


def check_slo(rows: list[EndpointStats], slo_file: Path) -> list[str]:
    """Violations of an SLO file (see `load_slo`). An endpoint named in the file but never called
    is a violation too."""
    return slo_problems(rows, load_slo(slo_file), str(slo_file))


def slo_problems(rows: list[EndpointStats], slo: dict, source: str = "SLO") -> list[str]:
    """Violations of `slo` (`load_slo`'s shape) by `rows`, one line each."""
    by_name = {r.name: r for r in rows}
    problems = []
    for endpoint, limits in slo.items():
        if not isinstance(limits, dict):
            problems.append(f"{source}: `{endpoint}` must be a table")
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
                problems.append(f"{source}: unknown key `{endpoint}.{key}`")
    return problems
