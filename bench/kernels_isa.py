"""The instruction set the kernels run on, and the microkernel's block shapes side by side.

`isa_lines()` is the header of `shopserve bench kernels`: the CPU model and SIMD flags from
/proc/cpuinfo, what LLVM (Numba's code generator) sees and targets, the microkernel's block, and
Numba's thread count. `shape_methods()` builds the exact top-k with each block shape of
`kernels._microkernel.BLOCK_SHAPES` (recompiled here without the on-disk cache), so one run
times the host's shape against the other's on the same data.
"""

from __future__ import annotations

import statistics
import time
import types as pytypes
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from llvmlite import binding as llvm

from kernels import ItemMatrix, _microkernel, _scan, topk

__all__ = ["SIMD_FLAGS", "isa_lines", "microkernel_lines", "shape_methods"]

SIMD_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vnni", "avxvnni")


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = "unknown", set[str]()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def isa_lines() -> list[str]:
    model, flags = _cpuinfo()
    feats = llvm.get_host_cpu_features()
    lanes, nq, ni = _microkernel.MK_LANES, _microkernel.MK_BLOCK_QUERIES, _microkernel.MK_ITEMS

    def yes_no(have: Callable[[str], bool]) -> str:
        return " ".join(f"{f}={'yes' if have(f) else 'no'}" for f in SIMD_FLAGS)

    return [
        f"CPU: {model}; {getattr(numba.config, 'NUMBA_NUM_THREADS', '?')} CPUs seen by Numba, "
        f"{numba.get_num_threads()} threads (NUMBA_THREADING_LAYER={getattr(numba.config, 'THREADING_LAYER', '?')})",
        f"  /proc/cpuinfo flags: {yes_no(lambda f: f in flags)}",
        f"  LLVM host {llvm.get_host_cpu_name()}: {yes_no(lambda f: bool(feats.get(f, False)))}",
        f"  microkernel ({_microkernel.host_isa()}): {nq} queries x {ni} items, "
        f"{lanes}-float vectors, {nq * ni // lanes} accumulators",
    ]


def _rejit(fn: Any, **overrides: Any) -> Any:
    """A fresh, uncached compile of the Numba function fn with some of its globals replaced."""
    py = fn.py_func
    glb = dict(py.__globals__) | overrides
    clone = pytypes.FunctionType(py.__code__, glb, py.__name__, py.__defaults__, py.__closure__)
    opts = {k: v for k, v in fn.targetoptions.items() if k not in ("cache", "nopython")}
    return numba.njit(**opts)(clone)


def _exact_with_shape(lanes: int, nq: int, ni: int) -> Callable[..., tuple[np.ndarray, Any]]:
    block = _microkernel.make_outer_product_block(lanes, nq, ni)
    score = _rejit(_scan.score_tile, outer_product_block=block, MK_ITEMS=ni, MK_BLOCK_QUERIES=nq)
    panel = _rejit(_scan.panel_as_f32)
    exact = _rejit(topk._topk_exact, score_tile=score, panel_as_f32=panel)

    def run(q: np.ndarray, items: ItemMatrix, k: int, n_threads: int) -> tuple[np.ndarray, Any]:
        b = q.shape[0]
        pad = _scan.pad_queries(q)  # a multiple of MK_QUERIES, which every block divides
        ids = np.empty((b, k), np.int64)
        scores = np.empty((b, k), np.float32)
        filt = (0, np.zeros(1, np.uint8), np.zeros(1, np.uint64))
        ex = (np.zeros(b + 1, np.int64), np.zeros(0, np.int64))
        exact(
            q, pad, items.panels, items.n_items, items.scales, *items.query_offsets(q), k, *filt,
            *ex, n_threads, ids, scores,
        )  # fmt: skip
        return ids, scores

    return run


def shape_methods(
    mats: dict[str, ItemMatrix], k: int
) -> list[tuple[str, str, Callable[[np.ndarray], np.ndarray]]]:
    """(method, dtype, run) of the exact top-k built with each block shape, float32 and int8."""
    out: list[tuple[str, str, Callable[[np.ndarray], np.ndarray]]] = []
    threads = numba.get_num_threads()

    def bind(run: Callable[..., tuple[np.ndarray, Any]], m: ItemMatrix) -> Callable[..., Any]:
        return lambda q: run(q, m, k, threads)[0]

    for isa, shape in _microkernel.BLOCK_SHAPES.items():
        run = _exact_with_shape(*shape)
        name = f"ours-exact-mk-{isa}-{shape[1]}x{shape[2]}"
        out += [(name, dt, bind(run, mats[dt])) for dt in ("float32", "int8")]
    return out


@numba.njit(nogil=True)
def _repeat(score: Any, tile: np.ndarray, q: np.ndarray, out: np.ndarray, n: int) -> None:
    for _ in range(n):
        score(tile, tile.shape[1], q, out)


def microkernel_lines(query_counts: tuple[int, ...] = (8, 64), rounds: int = 15) -> list[str]:
    """`score_tile` alone with each block shape on one L1/L2-resident tile (64 dims x 256
    items), calls interleaved: the microkernel's own throughput, without the scan's memory
    traffic and selection. GFLOP/s count the real (unpadded) queries."""
    rng = np.random.default_rng(0)
    tile = rng.standard_normal((64, 256)).astype(np.float32)
    out = []
    for n_q in query_counts:
        q = _scan.pad_queries(rng.standard_normal((n_q, 64)).astype(np.float32))
        runs = {}
        for isa, (lanes, nq, ni) in _microkernel.BLOCK_SHAPES.items():
            block = _microkernel.make_outer_product_block(lanes, nq, ni)
            score = _rejit(_scan.score_tile, outer_product_block=block, MK_ITEMS=ni,
                           MK_BLOCK_QUERIES=nq)  # fmt: skip
            res = np.empty((q.shape[0], 256), np.float32)
            _repeat(score, tile, q, res, 1)
            np.testing.assert_allclose(res[:n_q], q[:n_q] @ tile, rtol=1e-4, atol=1e-3)
            runs[f"{isa} {nq}x{ni}"] = (score, res)
        times: dict[str, list[float]] = {name: [] for name in runs}
        reps = max(10, 2000 // n_q)
        for _ in range(rounds):
            for name, (score, res) in runs.items():
                t = time.perf_counter()
                _repeat(score, tile, q, res, reps)
                times[name].append((time.perf_counter() - t) / reps)
        cells = []
        for name, ts in times.items():
            med = statistics.median(ts)
            cells.append(
                f"{name} {med * 1e6:.1f} us ({2 * n_q * 256 * 64 / med / 1e9:.1f} GFLOP/s)"
            )
        out.append(f"score_tile, {n_q} queries x 256 items x 64 dims: " + ", ".join(cells))
    return out
