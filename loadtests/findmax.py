"""`shopserve loadtest --find-max`: the highest user count at which the storefront mix still meets
every endpoint's p99 SLO with zero errors. User counts double from `start_users` until a step
fails (or `max_users` passes), then bisect between the last pass and the first failure until
they are within `resolution`; every step is one bounded Locust run whose warm-up is excluded
from its statistics. The search assumes pass/fail is monotone in users, which noise breaks near
the boundary: the answer is a step that passed, not a guarantee about its neighbours."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from loadtests.locust_run import LocustRun, Usage, run_locust
from loadtests.plot import plot_report
from loadtests.report import EndpointStats, read_stats, slo_problems

__all__ = ["FindMaxConfig", "Step", "find_max", "render_step", "render_summary", "run_find_max"]


class _Probe(Protocol):
    users: int
    passed: bool


S = TypeVar("S", bound=_Probe)


def find_max(
    run_step: Callable[[int], S],
    *,
    start_users: int,
    max_users: int,
    max_steps: int,
    resolution: float = 0.1,
) -> tuple[S | None, list[S], str]:
    """(the passing step with the most users or None, every step in order, why it stopped).
    Bisection stops once the gap between the highest pass and the lowest failure is at most
    `max(1, resolution * highest pass)` users."""
    steps: list[S] = []

    def probe(users: int) -> bool:
        steps.append(run_step(users))
        return steps[-1].passed

    lo, hi = 0, None  # highest passing count (0: none yet); lowest failing count
    users = max(1, min(start_users, max_users))
    reason = f"step limit ({max_steps}) reached while doubling"
    while len(steps) < max_steps:
        if not probe(users):
            hi = users
            break
        lo = users
        if users >= max_users:
            reason = f"every step up to --max-users {max_users} passed"
            break
        users = min(2 * users, max_users)
    while hi is not None:
        if hi - lo <= max(1, resolution * lo):
            reason = f"boundary between {lo} (pass) and {hi} (fail) users"
            break
        if len(steps) >= max_steps:
            reason = f"step limit ({max_steps}) reached; the boundary is in ({lo}, {hi}) users"
            break
        mid = (lo + hi) // 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    if lo == 0:
        reason = "no step passed" + (f" (down to {hi} users)" if hi is not None else "")
    best = next((s for s in reversed(steps) if s.passed and s.users == lo), None)
    return best, steps, reason


@dataclass
class Step:
    users: int
    passed: bool
    rows: list[EndpointStats] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    usage: Usage | None = None

    @property
    def total(self) -> EndpointStats | None:
        return next((r for r in self.rows if r.name == "Aggregated"), None)

    @property
    def rps(self) -> float:
        return self.total.rps if self.total else math.nan

    @property
    def errors(self) -> int:
        return self.total.failures if self.total else 0


def step_problems(rows: list[EndpointStats], slo: dict, endpoints: list[str]) -> list[str]:
    """Why a step fails: an endpoint of the mix over its SLO (`slo`'s limits, errors forced to
    zero) or never answered, or errors on any other request name."""
    limits = {e: {**slo.get(e, {}), "error_rate": 0.0} for e in endpoints}
    problems = slo_problems(rows, limits)
    for r in rows:
        if r.name not in limits and r.name != "Aggregated" and r.failures:
            problems.append(f"{r.name}: {r.failures} errors")
    return problems


@dataclass(frozen=True)
class FindMaxConfig:
    host: str
    endpoints: list[str]  # the mix's endpoints (those the server serves)
    mix: str
    slo: dict
    report_dir: Path
    step_s: int = 45
    warmup_s: int = 10
    start_users: int = 2
    max_users: int = 64
    max_steps: int = 10
    resolution: float = 0.1
    server_pid: int | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def worst_case_s(self) -> int:
        """Upper bound on the search's wall time, with ~15 s per step for Locust's start-up
        (reading the payload data) and drain."""
        return self.max_steps * (self.warmup_s + self.step_s + 15)


def run_step(cfg: FindMaxConfig, users: int, index: int) -> Step:
    out = cfg.report_dir / f"step{index:02d}_u{users}"
    run = LocustRun(
        host=cfg.host,
        users=users,
        # all users within the first half of the warm-up, so its second half runs at full load
        spawn_rate=max(1.0, users / max(1.0, cfg.warmup_s / 2)),
        duration_s=cfg.step_s,
        report_dir=out,
        warmup_s=cfg.warmup_s,
        mix=cfg.mix,
        env=cfg.env,
        server_pid=cfg.server_pid,
        log_file=out / "locust.log",
        html=False,
    )
    usage = run_locust(run)
    if usage.returncode != 0:
        raise SystemExit(f"shopserve loadtest: locust exited with {usage.returncode}; see {out}")
    rows = read_stats(run.prefix)
    plot_report(run.prefix, out / "latency.png", cfg.slo, cfg.warmup_s)
    problems = step_problems(rows, cfg.slo, cfg.endpoints)
    return Step(users, not problems, rows, problems, usage)


def _cores(v: float) -> str:
    return "  n/a" if math.isnan(v) else f"{v:5.2f}"


def render_step(step: Step, index: int, slo: dict, endpoints: list[str]) -> str:
    u = step.usage or Usage(0)
    verdict = "PASS" if step.passed else "FAIL"
    head = (
        f"step {index}: {step.users} users, {step.rps:.1f} requests/s, {step.errors} errors, "
        f"CPU cores: locust {_cores(u.locust_cores).strip()}, "
        f"server {_cores(u.server_cores).strip()} -> {verdict}"
    )
    cols = f"  {'endpoint':<12}{'requests':>9}{'errors':>8}{'rps':>8}{'p50 ms':>8}{'p99 ms':>8}{'SLO p99':>9}  "
    lines = [head, cols, "  " + "-" * (len(cols) - 2)]
    by_name = {r.name: r for r in step.rows}
    for name in [*endpoints, *(r.name for r in step.rows if r.name not in endpoints)]:
        r = by_name.get(name)
        limit = (slo.get(name) or {}).get("p99_ms")
        if r is None:
            lines.append(f"  {name:<12}{'no requests':>9}")
            continue
        ok = r.failures == 0 and (limit is None or r.p99_ms <= limit)
        lines.append(
            f"  {name:<12}{r.requests:>9}{r.failures:>8}{r.rps:>8.1f}{r.p50_ms:>8.0f}"
            f"{r.p99_ms:>8.0f}{'-' if limit is None else f'{limit:g}':>9}  "
            + ("" if name == "Aggregated" else "ok" if ok else "MISSED")
        )
    return "\n".join(lines)


def render_summary(steps: list[Step], best: Step | None, reason: str) -> str:
    head = f"{'step':>4}{'users':>7}{'rps':>9}{'errors':>8}{'locust cores':>14}{'server cores':>14}  verdict"
    lines = [head, "-" * len(head)]
    for i, s in enumerate(steps, 1):
        u = s.usage or Usage(0)
        lines.append(
            f"{i:>4}{s.users:>7}{s.rps:>9.1f}{s.errors:>8}{_cores(u.locust_cores):>14}"
            f"{_cores(u.server_cores):>14}  "
            + ("pass" if s.passed else "fail: " + "; ".join(s.problems))
        )
    if best is None:
        lines.append(f"find-max: no user count met every SLO ({reason})")
    else:
        lines.append(
            f"find-max: {best.users} users ({best.rps:.1f} requests/s) is the highest load that met "
            f"every endpoint's p99 SLO with zero errors ({reason})"
        )
    return "\n".join(lines)


def _as_json(steps: list[Step], best: Step | None, reason: str, cfg: FindMaxConfig) -> dict:
    def one(s: Step) -> dict:
        u = s.usage or Usage(0)
        return {
            "users": s.users,
            "passed": s.passed,
            "rps": s.rps,
            "errors": s.errors,
            "problems": s.problems,
            "locust_cores": u.locust_cores,
            "server_cores": u.server_cores,
            "endpoints": {
                r.name: {
                    "requests": r.requests,
                    "failures": r.failures,
                    "rps": r.rps,
                    "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms,
                }
                for r in s.rows
            },
        }

    return {
        "best_users": best.users if best else None,
        "best_rps": best.rps if best else None,
        "reason": reason,
        "step_s": cfg.step_s,
        "warmup_s": cfg.warmup_s,
        "mix": cfg.mix,
        "steps": [one(s) for s in steps],
    }


def run_find_max(cfg: FindMaxConfig) -> Step | None:
    """Run the search, printing each step's table as it finishes and the summary at the end;
    `find_max.json` and one folder per step (CSVs, latency.png) go to `cfg.report_dir`."""

    def step(users: int) -> Step:
        index = len(done) + 1
        done.append(run_step(cfg, users, index))
        print(render_step(done[-1], index, cfg.slo, cfg.endpoints), flush=True)
        return done[-1]

    done: list[Step] = []
    best, steps, reason = find_max(
        step,
        start_users=cfg.start_users,
        max_users=cfg.max_users,
        max_steps=cfg.max_steps,
        resolution=cfg.resolution,
    )
    print(render_summary(steps, best, reason))
    (cfg.report_dir / "find_max.json").write_text(
        json.dumps(_as_json(steps, best, reason, cfg), indent=2)
    )
    return best
