"""`shopserve bench kernels`: our top-k kernels side by side with numpy, faiss-cpu and hnswlib.

One process, one data set, every method timed round-robin (one call of each in turn, repeated)
so that load from other work on the machine spreads evenly: compare ratios within a run.
Data: the Gaussian mixture of `bench/_mixture.py` (parameters there), 1M x 64, k = 100; recall@k
is measured against our exact float32 search (itself checked against numpy). The feature rows
time `assemble_features` for 64 features over 500 candidates of one query against a vectorised
numpy version of the same spec. The run starts with the instruction set (CPU flags, what LLVM
targets, the microkernel block chosen from it) and ends with the issue's targets and the exact
kernel rebuilt with each microkernel block shape (`-mk-` rows), from 4 queries on.
"""

from __future__ import annotations

import os

# Two OpenMP runtimes share two cores here (Numba's and faiss's): threads that spin after a
# parallel region starve the other runtime's threads for milliseconds. Sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from bench._mixture import MIXTURE_PARAMS, gaussian_mixture  # noqa: E402
from bench.kernels_isa import isa_lines, microkernel_lines, shape_methods  # noqa: E402
from bench.kernels_targets import feature_rows, shape_lines, target_lines  # noqa: E402
from kernels import ItemMatrix, build_ivf, search_ivf, topk_inner_product  # noqa: E402
from kernels._microkernel import host_isa  # noqa: E402
from kernels.topk import SMALL_BATCH  # noqa: E402

__all__ = ["main"]

K = 100
DIM = 64
BATCHES = (1, 8, 64)
NPROBES = (8, 16, 32, 64)
HNSW_EFS = (100, 200, 400)
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 100


@dataclass
class Method:
    method: str
    dtype: str
    run: Callable[[np.ndarray], np.ndarray]  # queries [b, DIM] -> ids [b, K]


def _numpy_topk(items: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def run(q: np.ndarray) -> np.ndarray:
        s = q @ items.T
        part = np.argpartition(-s, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
        return np.take_along_axis(part, order, 1)

    return run


@numba.njit(parallel=True, nogil=True, fastmath=True)
def _read_all(flat: np.ndarray) -> float:
    """Sum every element: one pass over the array, the memory floor of a scan."""
    total = 0.0
    for i in numba.prange(flat.shape[0]):
        total += flat[i]
    return total


def _floors(items: np.ndarray, queries: np.ndarray, log: Callable[[str], None]) -> dict[str, float]:
    """Same-run floors, in ms: one read of the float32 / 2-byte / 1-byte item bytes (Numba,
    all threads), and the batch-64 GEMM alone (numpy BLAS into a preallocated output)."""
    flat32 = items.reshape(-1)
    flat16 = flat32[: flat32.size // 2]  # same byte counts as float16 / int8 storage
    flat8 = flat32[: flat32.size // 4]
    q64 = np.ascontiguousarray(queries[:64])
    out = np.empty((64, len(items)), np.float32)
    runs = {
        "read float32 bytes": lambda: _read_all(flat32),
        "read float16 bytes": lambda: _read_all(flat16),
        "read int8 bytes": lambda: _read_all(flat8),
        "gemm batch 64": lambda: np.matmul(q64, items.T, out=out),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()
    for _ in range(7):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    floors = {name: statistics.median(v) * 1e3 for name, v in times.items()}
    log("floors (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in floors.items()))
    return floors


def _recall(ids: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(a, t)) / K for a, t in zip(ids, truth, strict=True)]))


def _time_round_robin(
    methods: list[Method], queries: np.ndarray, batch: int, budget_s: float, min_rounds: int = 3
) -> dict[str, float]:
    """Median seconds per call of each method at this batch size, calls interleaved."""
    times: dict[str, list[float]] = {m.method + m.dtype: [] for m in methods}
    n_batches = len(queries) // batch
    for m in methods:  # warm-up (compiles, page faults)
        m.run(queries[:batch])
    start = time.perf_counter()
    r = 0
    while r < min_rounds or (time.perf_counter() - start < budget_s and r < 200):
        q = queries[(r % n_batches) * batch : (r % n_batches + 1) * batch]
        for m in methods:
            t = time.perf_counter()
            m.run(q)
            times[m.method + m.dtype].append(time.perf_counter() - t)
        r += 1
    return {key: statistics.median(v) for key, v in times.items()}


def _cache_dir() -> str:
    path = os.path.join(os.path.expanduser("~"), ".cache", "shopserve", "bench")
    os.makedirs(path, exist_ok=True)
    return path


def _peers(items: np.ndarray, nlist: int, log: Callable[[str], None]) -> list[Method]:
    """faiss-cpu flat + IVF and hnswlib, where installed (the `bench` extra)."""
    out: list[Method] = []
    threads = numba.get_num_threads()
    try:
        import faiss  # type: ignore[import-not-found]

        faiss.omp_set_num_threads(threads)
        flat = faiss.IndexFlatIP(DIM)
        flat.add(items)
        out.append(Method("faiss-flat", "float32", lambda q: flat.search(q, K)[1]))
        t = time.perf_counter()
        quant = faiss.IndexFlatIP(DIM)
        ivf = faiss.IndexIVFFlat(quant, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        ivf.train(items[rng.choice(len(items), min(len(items), 64 * nlist), replace=False)])
        ivf.add(items)
        log(f"faiss IVF{nlist} built in {time.perf_counter() - t:.1f} s")
        for p in NPROBES:
            params = faiss.SearchParametersIVF(nprobe=p)
            out.append(
                Method(
                    f"faiss-ivf-nprobe{p}",
                    "float32",
                    lambda q, s=params: ivf.search(q, K, params=s)[1],
                )
            )
    except ImportError:
        log("faiss-cpu not installed: its rows are skipped (pip install -e .[bench])")
    try:
        import hnswlib  # type: ignore[import-not-found]

        index = hnswlib.Index(space="ip", dim=DIM)
        key = (
            f"hnsw_{len(items)}_{DIM}_{MIXTURE_PARAMS['seed']}_{HNSW_M}_{HNSW_EF_CONSTRUCTION}.bin"
        )
        path = os.path.join(_cache_dir(), key)
        t = time.perf_counter()
        if os.path.exists(path):
            index.load_index(path, max_elements=len(items))
            log(f"hnswlib index loaded from {path}")
        else:
            index.init_index(
                len(items), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, random_seed=1
            )
            index.add_items(items, num_threads=threads)
            index.save_index(path)
            log(
                f"hnswlib M={HNSW_M} efC={HNSW_EF_CONSTRUCTION} built in {time.perf_counter() - t:.1f} s"
            )
        index.set_num_threads(threads)

        def hnsw(ef: int) -> Callable[[np.ndarray], np.ndarray]:
            def run(q: np.ndarray) -> np.ndarray:
                index.set_ef(ef)
                return index.knn_query(q, k=K, num_threads=threads)[0].astype(np.int64)

            return run

        out += [Method(f"hnswlib-ef{ef}", "float32", hnsw(ef)) for ef in HNSW_EFS]
    except ImportError:
        log("hnswlib not installed: its rows are skipped (pip install -e .[bench])")
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="shopserve bench kernels", description=__doc__)
    parser.add_argument("--json", metavar="FILE", help="write the rows as a JSON list")
    parser.add_argument("--quick", action="store_true", help="100k items, shorter timing")
    parser.add_argument(
        "--real-embeddings",
        metavar="NPY",
        help="float [n, d] embeddings (e.g. export's MiniLM item_minilm.npy): recall rows on "
        "their 64-d PCA, 256 held-out rows as queries",
    )
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    print("\n".join(isa_lines()), flush=True)
    n_items = 100_000 if args.quick else 1_000_000
    nlist = 256 if args.quick else 1024
    budget_s = 0.5 if args.quick else 2.0
    t0 = time.perf_counter()
    items, queries = gaussian_mixture(n_items, 256, DIM)
    log(f"mixture {n_items} x {DIM} ({MIXTURE_PARAMS}) in {time.perf_counter() - t0:.1f} s")
    mats = {dt: ItemMatrix.quantize(items, dt) for dt in ("float32", "float16", "int8")}
    t = time.perf_counter()
    ivf = build_ivf(mats["float32"], nlist)
    log(f"ours IVF{nlist} built in {time.perf_counter() - t:.1f} s (includes first compile)")

    ours = [
        Method("ours-exact", dt, lambda q, m=m: topk_inner_product(q, m, K)[0])
        for dt, m in mats.items()
    ]
    ours += [
        Method(f"ours-ivf-nprobe{p}", "float32", lambda q, p=p: search_ivf(q, ivf, K, p)[0])
        for p in NPROBES
    ]
    # the exact kernel rebuilt with each microkernel block shape (used from SMALL_BATCH queries)
    shapes = [Method(name, dt, run) for name, dt, run in shape_methods(mats, K)]
    host_shape = next(m.method for m in shapes if f"-mk-{host_isa()}-" in m.method)
    methods = ours + [Method("numpy", "float32", _numpy_topk(items))] + _peers(items, nlist, log)

    recall_q = queries[:64]
    truth = ours[0].run(recall_q)
    agree = _recall(_numpy_topk(items)(recall_q), truth)
    log(f"exact float32 vs numpy recall@{K}: {agree:.4f}")
    recalls = {m.method + m.dtype: _recall(m.run(recall_q), truth) for m in methods + shapes}

    rows: list[dict[str, object]] = []
    for b in BATCHES:
        log(f"timing batch {b} ...")
        med = _time_round_robin(methods, queries, b, budget_s)
        # the block shapes in a round-robin of their own (only they alternate): >= 7 calls each
        timed = methods + (shapes if b >= SMALL_BATCH else [])
        if b >= SMALL_BATCH:
            med |= _time_round_robin(shapes, queries, b, budget_s / 2, min_rounds=7)
        for m in timed:
            key = m.method + m.dtype
            rows.append(
                {
                    "kernel": "topk",
                    "method": m.method,
                    "dtype": m.dtype,
                    "batch": b,
                    "k": K,
                    "n_items": n_items,
                    "dim": DIM,
                    "qps": b / med[key],
                    "recall": round(recalls[key], 4),
                    "median_ms": med[key] * 1e3,
                }  # fmt: skip
            )
    floors = _floors(items, queries, log)
    rows += feature_rows(n_items)
    if args.real_embeddings:
        rows += _real_rows(args.real_embeddings, log)
    _print_table(rows)
    print("\nSame-run floors (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in floors.items()))
    print("\nTargets (issue 11 item 4; ratios within this run):\n")
    print("\n".join(target_lines(rows, floors)))
    big = tuple(b for b in BATCHES if b >= SMALL_BATCH)
    print(f"\nMicrokernel blocks, same run (host: {host_shape}):")
    print("\n".join(shape_lines(rows, host_shape, big)))
    print("\n".join(microkernel_lines()))
    log(
        f"total {time.perf_counter() - t0:.0f} s, {numba.get_num_threads()} threads, "
        f"threading layer {numba.threading_layer()}"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    return 0


def _real_rows(path: str, log: Callable[[str], None]) -> list[dict[str, object]]:
    """Recall of the quantised and IVF searches on real embeddings reduced to 64-d by PCA."""
    emb = np.load(path).astype(np.float64)
    emb -= emb.mean(axis=0)
    _, _, vt = np.linalg.svd(emb, full_matrices=False)
    x = (emb @ vt[:DIM].T).astype(np.float32)
    rng = np.random.default_rng(MIXTURE_PARAMS["seed"])
    order = rng.permutation(len(x))
    queries, items = x[order[:256]], x[order[256:]]
    n, k = len(items), min(K, len(items))
    log(f"real embeddings {path}: {emb.shape} -> PCA {DIM}, {n} items, 256 queries")
    mats = {
        dt: ItemMatrix.quantize(items, dt, n_centroids=64) for dt in ("float32", "float16", "int8")
    }
    truth = topk_inner_product(queries, mats["float32"], k)[0]
    nlist = max(1, int(np.sqrt(n)))
    ivf = build_ivf(mats["float32"], nlist)
    results = [("ours-exact", dt, topk_inner_product(queries, m, k)[0]) for dt, m in mats.items()]
    results += [
        (f"ours-ivf{nlist}-nprobe{p}", "float32", search_ivf(queries, ivf, k, p)[0])
        for p in (4, 8, 16)
    ]
    return [
        {
            "kernel": "topk",
            "method": f"{method} (minilm-pca64)",
            "dtype": dt,
            "batch": 256,
            "k": k,
            "n_items": n,
            "dim": DIM,
            "qps": None,
            "recall": round(_recall_k(ids, truth), 4),
            "median_ms": None,
        }  # fmt: skip
        for method, dt, ids in results
    ]


def _recall_k(ids: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(np.intersect1d(a, t)) / t.size for a, t in zip(ids, truth, strict=True)])
    )


def _print_table(rows: list[dict[str, object]]) -> None:
    print("| kernel | method | dtype | batch | median ms | qps | recall@100 |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        rec = "" if r["recall"] is None else f"{r['recall']:.4f}"
        ms = "" if r["median_ms"] is None else f"{r['median_ms']:.3f}"
        qps = "" if r["qps"] is None else f"{r['qps']:,.0f}"
        print(
            f"| {r['kernel']} | {r['method']} | {r['dtype']} | {r['batch']} | {ms} | {qps} | {rec} |"
        )
