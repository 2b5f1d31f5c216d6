"""Ratios, issue 2's targets and the printed table, from the bench's rows (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Target", "cpu_targets", "evaluate_targets", "format_table", "ratios"]

VARIANTS = ("direct", "noop", "unbatched", "batched", "grpc", "litserve")
# batched / unbatched throughput wanted at concurrency 64, per model (issue 2, section 8)
BATCH_GAIN = {"mlp": 1.3, "encoder": 2.0}
LITSERVE_GAIN = 1.5
P50_OVER_FLOOR_MS = 0.3
BATCHED_C1_P50_SLACK = 1.10
HIGH_C = 64
# issue 11 item 1: the server's CPU per MLP request over the HTTP floor's (noop) CPU per request
CPU_OVER_NOOP_US = 120.0
CPU_MODELS = ("mlp",)


@dataclass(frozen=True)
class Target:
    model: str
    name: str
    wanted: str
    got: str
    met: bool | None  # None: a row it needs is missing

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT MET", None: "n/a"}[self.met]


def _index(rows: list[dict]) -> dict[tuple[str, str, int], dict]:
    return {(r["model"], r["variant"], r["concurrency"]): r for r in rows}


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(rows: list[dict]) -> list[dict]:
    """Per (model, concurrency): batched/unbatched and batched/litserve rps and p99, and the p50s
    of shopserve over `direct + noop` (the model's own time plus the HTTP floor)."""
    idx = _index(rows)
    out = []
    for model, c in sorted({(r["model"], r["concurrency"]) for r in rows}):

        def g(variant: str, key: str, model: str = model, c: int = c) -> float | None:
            r = idx.get((model, variant, c))
            return None if r is None else r[key]

        floor = None
        if g("direct", "p50_ms") is not None and g("noop", "p50_ms") is not None:
            floor = g("direct", "p50_ms") + g("noop", "p50_ms")  # type: ignore[operator]
        out.append(
            {
                "model": model,
                "concurrency": c,
                "batched_over_unbatched_rps": _div(g("batched", "rps"), g("unbatched", "rps")),
                "batched_over_litserve_rps": _div(g("batched", "rps"), g("litserve", "rps")),
                "batched_over_unbatched_p99": _div(
                    g("batched", "p99_ms"), g("unbatched", "p99_ms")
                ),
                "batched_over_litserve_p99": _div(g("batched", "p99_ms"), g("litserve", "p99_ms")),
                "direct_plus_noop_p50_ms": floor,
                "batched_p50_over_floor_ms": None
                if floor is None or g("batched", "p50_ms") is None
                else g("batched", "p50_ms") - floor,  # type: ignore[operator]
                "unbatched_p50_over_floor_ms": None
                if floor is None or g("unbatched", "p50_ms") is None
                else g("unbatched", "p50_ms") - floor,  # type: ignore[operator]
            }
        )
    return out


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def evaluate_targets(rows: list[dict]) -> list[Target]:
    idx = _index(rows)
    rat = {(r["model"], r["concurrency"]): r for r in ratios(rows)}
    out: list[Target] = []
    for model in sorted({r["model"] for r in rows}):
        r1 = rat.get((model, 1), {})
        for variant in ("unbatched", "batched"):
            over = r1.get(f"{variant}_p50_over_floor_ms")
            out.append(
                Target(
                    model,
                    f"{variant} p50 @c1 within {P50_OVER_FLOOR_MS} ms of direct+noop",
                    f"<= {P50_OVER_FLOOR_MS:+.2f} ms",
                    f"{_fmt(over, '+.3f')} ms",
                    None if over is None else over <= P50_OVER_FLOOR_MS,
                )
            )
        b1, u1 = idx.get((model, "batched", 1)), idx.get((model, "unbatched", 1))
        slack = _div(b1 and b1["p50_ms"], u1 and u1["p50_ms"])
        out.append(
            Target(
                model,
                "batching never loses @c1 (p50 batched/unbatched)",
                f"<= {BATCHED_C1_P50_SLACK:.2f}",
                _fmt(slack, ".3f"),
                None if slack is None else slack <= BATCHED_C1_P50_SLACK,
            )
        )
        rh = rat.get((model, HIGH_C), {})
        gain, p99 = rh.get("batched_over_unbatched_rps"), rh.get("batched_over_unbatched_p99")
        want = BATCH_GAIN.get(model, 2.0)
        out.append(
            Target(
                model,
                f"@c{HIGH_C} batched/unbatched rps, at a lower p99",
                f">= {want:.1f}x, p99 ratio < 1",
                f"{_fmt(gain)}x, p99 ratio {_fmt(p99)}",
                None if gain is None or p99 is None else gain >= want and p99 < 1.0,
            )
        )
        gain, p99 = rh.get("batched_over_litserve_rps"), rh.get("batched_over_litserve_p99")
        out.append(
            Target(
                model,
                f"@c{HIGH_C} batched/litserve rps, at an equal or lower p99",
                f">= {LITSERVE_GAIN:.1f}x, p99 ratio <= 1",
                f"{_fmt(gain)}x, p99 ratio {_fmt(p99)}",
                None if gain is None or p99 is None else gain >= LITSERVE_GAIN and p99 <= 1.0,
            )
        )
    return out


def _cpu_us(cell: dict | None) -> float | None:
    rate = (cell or {}).get("req_per_server_cpu_s")
    return 1e6 / rate if rate else None


def cpu_targets(cells: dict) -> list[Target]:
    """Server CPU per request (1 / requests per server CPU-second, from the same cell's
    /proc accounting) of each shopserve variant over noop's at the same concurrency."""
    out: list[Target] = []
    for model, variant, c in sorted(cells):
        if model not in CPU_MODELS or variant not in ("unbatched", "batched"):
            continue
        ours, floor = (
            _cpu_us(cells.get((model, variant, c))),
            _cpu_us(cells.get((model, "noop", c))),
        )
        over = None if ours is None or floor is None else ours - floor
        got = "-" if over is None else f"{ours:.0f} us = noop's {floor:.0f} {over:+.0f} us"
        out.append(
            Target(
                model,
                f"{variant} server CPU per request @c{c} over noop's",
                f"<= {CPU_OVER_NOOP_US:+.0f} us",
                got,
                None if over is None else over <= CPU_OVER_NOOP_US,
            )
        )
    return out


def format_table(rows: list[dict], cells: dict | None = None) -> str:
    """Rows grouped by model and concurrency, then ratios, then the targets."""
    cells = cells or {}
    order = {v: i for i, v in enumerate(VARIANTS)}
    lines = [
        f"{'model':<8} {'conc':>4} {'variant':<10} {'rps':>9} {'p50_ms':>8} {'p99_ms':>8} "
        f"{'errors':>6} {'srv_cpu%':>8} {'gen_cpu%':>8} {'other%':>7} {'req/cpu_s':>9}"
    ]
    for r in sorted(rows, key=lambda r: (r["model"], r["concurrency"], order.get(r["variant"], 9))):
        m = cells.get((r["model"], r["variant"], r["concurrency"]), {})
        lines.append(
            f"{r['model']:<8} {r['concurrency']:>4} {r['variant']:<10} {r['rps']:>9.1f} "
            f"{r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {m.get('errors', 0):>6} "
            f"{_fmt(m.get('server_cpu_pct'), '.0f'):>8} {_fmt(m.get('client_cpu_pct'), '.0f'):>8} "
            f"{_fmt(m.get('other_cpu_pct'), '.0f'):>7} "
            f"{_fmt(m.get('req_per_server_cpu_s'), '.0f'):>9}"
        )
    lines += [
        "",
        f"{'model':<8} {'conc':>4} {'b/u rps':>8} {'b/ls rps':>8} {'b/u p99':>8} {'b/ls p99':>8} "
        f"{'direct+noop p50':>15} {'b p50-floor':>11} {'u p50-floor':>11}",
    ]
    for q in ratios(rows):
        lines.append(
            f"{q['model']:<8} {q['concurrency']:>4} {_fmt(q['batched_over_unbatched_rps']):>8} "
            f"{_fmt(q['batched_over_litserve_rps']):>8} {_fmt(q['batched_over_unbatched_p99']):>8} "
            f"{_fmt(q['batched_over_litserve_p99']):>8} "
            f"{_fmt(q['direct_plus_noop_p50_ms'], '.3f'):>15} "
            f"{_fmt(q['batched_p50_over_floor_ms'], '+.3f'):>11} "
            f"{_fmt(q['unbatched_p50_over_floor_ms'], '+.3f'):>11}"
        )
    lines.append("")
    for t in evaluate_targets(rows) + cpu_targets(cells):
        lines.append(f"[{t.verdict:^7}] {t.model:<8} {t.name}: wanted {t.wanted}, got {t.got}")
    return "\n".join(lines)
