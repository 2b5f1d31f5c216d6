"""`shopserve bench pipelines --model-repository DIR`: should the shop pipelines batch their
kernel calls across concurrent requests? Per-query cost of retrieval (exact top-k over the
exported item/product embeddings) and of feature assembly, one query per call against b queries
in one call, on the repository's own artifacts."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

# the timing lambdas below run at once, inside their loop iteration
# ruff: noqa: B023
from kernels import FeatureSpec, FeatureTables, ItemMatrix, assemble_features, topk_inner_product

__all__ = ["main"]


def _median_us(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e3


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="shopserve bench pipelines", description=__doc__)
    p.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    repo = args.model_repository
    rng = np.random.default_rng(0)
    rows = []
    for pipeline, emb_name in (
        ("search", "product_embeddings.npy"),
        ("recommend", "item_embeddings.npy"),
    ):
        path = repo / pipeline / "1" / emb_name
        if not path.exists():
            print(f"skip {pipeline}: {path} missing")
            continue
        emb = np.load(path).astype(np.float32)
        items = ItemMatrix.from_array(emb)
        k = 100 if pipeline == "recommend" else 10
        for b in (1, 8, 32):
            q = rng.standard_normal((b, emb.shape[1])).astype(np.float32)
            us = _median_us(lambda q=q: topk_inner_product(q, items, k, n_threads=1), args.repeats)
            rows.append(
                {
                    "stage": f"{pipeline}.retrieve",
                    "n_items": emb.shape[0],
                    "dim": emb.shape[1],
                    "k": k,
                    "batch": b,
                    "us_per_call": round(us, 1),
                    "us_per_query": round(us / b, 1),
                }
            )
    folder = repo / "recommend" / "1"
    cfg_params = None
    if (folder / "features.json").exists():
        import tomllib

        cfg_params = tomllib.loads((repo / "recommend" / "config.toml").read_text())["parameters"]
        spec = FeatureSpec.load(folder / "features.json")
        tables = FeatureTables(*[np.load(folder / n) for n in cfg_params["feature_tables"]])
        n_items = tables.item_features.shape[0]
        n_cand = int(cfg_params.get("candidates", 100))
        for b in (1, 8, 32):
            cands = rng.integers(0, n_items, b * n_cand).astype(np.int64)
            recent = rng.integers(0, n_items, b * 10).astype(np.int64)
            ages = np.full(b * 10, 86400.0, np.float32)
            out = np.empty((b * n_cand, spec.n_features), np.float32)
            users = np.zeros(b, np.int64)
            cptr = np.arange(0, b * n_cand + 1, n_cand, dtype=np.int64)
            rptr = np.arange(0, b * 10 + 1, 10, dtype=np.int64)
            us = _median_us(
                lambda: assemble_features(
                    spec, tables, users, cptr, cands, rptr, recent, ages, out
                ),
                args.repeats,
            )
            rows.append(
                {
                    "stage": "recommend.features",
                    "n_items": n_items,
                    "dim": spec.n_features,
                    "k": n_cand,
                    "batch": b,
                    "us_per_call": round(us, 1),
                    "us_per_query": round(us / b, 1),
                }
            )
    head = f"{'stage':<20}{'items':>8}{'dim':>6}{'k':>6}{'batch':>7}{'us/call':>10}{'us/query':>10}{'vs batch 1':>12}"
    print(head)
    print("-" * len(head))
    base: dict[str, float] = {}
    for r in rows:
        if r["batch"] == 1:
            base[r["stage"]] = r["us_per_query"]
        ratio = base[r["stage"]] / r["us_per_query"]
        print(
            f"{r['stage']:<20}{r['n_items']:>8}{r['dim']:>6}{r['k']:>6}{r['batch']:>7}"
            f"{r['us_per_call']:>10.1f}{r['us_per_query']:>10.1f}{ratio:>11.2f}x"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0
