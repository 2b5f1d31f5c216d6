"""The kernel benchmark's feature rows (ours and numpy, timed in turn) and its target lines.

Targets (issue 11, item 4), each from ratios within one run: feature assembly 64 x 500 <= 0.1 ms
and >= 5x the vectorised numpy version of the same spec; int8 exact top-k at batch 1 >= 2.5x
the float32 kernel or within 1.5x of its memory floor (one read of the int8 item bytes).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["FEATURE_CALLS", "feature_rows", "shape_lines", "target_lines"]

FEATURE_CALLS = 300
Row = dict[str, object]


def feature_rows(n_items: int, calls: int = FEATURE_CALLS) -> list[Row]:
    """Median time of `assemble_features` and of `numpy_assemble` on the benchmark's case
    (64 features x 500 candidates of one query), one call of each in turn."""
    from bench.kernels_features import feature_case, numpy_case

    runs: dict[str, Callable[[], object]] = {
        "ours": feature_case(n_items),
        "numpy": numpy_case(n_items),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()
    for _ in range(calls):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    rows: list[Row] = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append(
            {
                "kernel": "features",
                "method": name,
                "dtype": "float32",
                "batch": 500,
                "k": 0,
                "n_items": n_items,
                "dim": 64,
                "qps": 1.0 / med,
                "recall": None,
                "median_ms": med * 1e3,
            }  # fmt: skip
        )
    return rows


def _ms(rows: list[Row], kernel: str, method: str, dtype: str, batch: int) -> float | None:
    for r in rows:
        if (r["kernel"], r["method"], r["dtype"], r["batch"]) == (kernel, method, dtype, batch):
            return float(r["median_ms"])  # type: ignore[arg-type]
    return None


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def target_lines(rows: list[Row], floors: dict[str, float]) -> list[str]:
    """Markdown table of the issue's kernel targets, measured against this run's rows."""
    out = ["| target | measured | |", "|---|---|---|"]
    ours = _ms(rows, "features", "ours", "float32", 500)
    numpy = _ms(rows, "features", "numpy", "float32", 500)
    if ours is not None and numpy is not None:
        out.append(f"| features 64 x 500 <= 0.1 ms | {ours:.3f} ms | {_verdict(ours <= 0.1)} |")
        out.append(
            f"| features >= 5x numpy | {numpy:.3f} / {ours:.3f} ms = {numpy / ours:.1f}x "
            f"| {_verdict(numpy / ours >= 5.0)} |"
        )
    f32 = _ms(rows, "topk", "ours-exact", "float32", 1)
    i8 = _ms(rows, "topk", "ours-exact", "int8", 1)
    floor = floors.get("read int8 bytes")
    if f32 is not None and i8 is not None and floor:
        speed, over = f32 / i8, i8 / floor
        out.append(
            f"| int8 batch 1 >= 2.5x float32, or within 1.5x of its floor | {f32:.3f} / "
            f"{i8:.3f} ms = {speed:.2f}x float32; {i8:.3f} / {floor:.3f} ms read int8 = "
            f"{over:.2f}x floor | {_verdict(speed >= 2.5 or over <= 1.5)} |"
        )
    return out


def shape_lines(rows: list[Row], host_method: str, batches: tuple[int, ...]) -> list[str]:
    """The host's microkernel block against every other shape, same run: time ratios."""
    out = []
    others = sorted({str(r["method"]) for r in rows if "-mk-" in str(r["method"])} - {host_method})
    for b in batches:
        for dt in ("float32", "int8"):
            base = _ms(rows, "topk", host_method, dt, b)
            cells = []
            for m in others:
                t = _ms(rows, "topk", m, dt, b)
                if base is not None and t is not None:
                    cells.append(f"{m} {t:.2f} ms ({t / base:.2f}x)")
            if base is not None and cells:
                out.append(f"batch {b} {dt}: {host_method} {base:.2f} ms; " + ", ".join(cells))
    return out
