"""`python -m bench.kernels_versus REV`: this tree's feature-assembly kernel against the one at
git revision REV, in the same process, in interleaved rounds (the machine's speed state, which
moves absolute figures by ~1.6x here, cancels in each round's ratio).

REV's `kernels/` is copied out of git into a temporary package (`kernels_rev`, its own Numba
cache), both kernels run the benchmark's case (`bench/kernels_features.py`: 64 features x 500
candidates, 1M items) and groups of 32 features of one kind; their outputs are compared before
any timing, then both are timed by `export.onnx_tools.paired_rounds`. Prints, per case, each
kernel's median time and the median and quartiles of the rounds' ratios (REV / this tree: > 1
means this tree is faster).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _load_rev(rev: str, root: Path) -> object:
    """`kernels` at `rev`, imported as the package `kernels_rev` from a folder under `root`."""
    pkg = root / "kernels_rev"
    pkg.mkdir()
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{rev}:kernels"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in names:
        if name.endswith(".py"):
            src = subprocess.run(
                ["git", "show", f"{rev}:kernels/{name}"], check=True, capture_output=True
            ).stdout
            (pkg / name).write_bytes(src)
    for name in [m for m in sys.modules if m == "kernels_rev" or m.startswith("kernels_rev.")]:
        del sys.modules[name]  # an earlier call's revision
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module("kernels_rev")
    finally:
        sys.path.remove(str(root))


def _cases() -> dict[str, list]:
    from bench.kernels_features import _spec
    from kernels import Feature

    n = 32
    edges = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
    return {
        "bench 64 x 500": list(_spec().features),
        "32 user": [Feature(f"u{c}", "user", column=c % 16) for c in range(n)],
        "32 item log1p": [
            Feature(f"i{c}", "item", column=c % 16, transform="log1p") for c in range(n)
        ],
        "32 item bucketize": [
            Feature(f"b{c}", "item", column=c % 16, transform="bucketize", boundaries=edges)
            for c in range(n)
        ],
        "32 recent category": [
            Feature(f"r{c}", "recent_category", half_life_s=60.0 * (c + 1)) for c in range(n)
        ],
        "32 cross, 4096 buckets": [
            Feature(f"x{c}", "hash_cross", column=c % 16, n_buckets=4096) for c in range(n)
        ],
        "32 cross, 1000 buckets": [
            Feature(f"y{c}", "hash_cross", column=c % 16, n_buckets=1000) for c in range(n)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kernels_versus", description=__doc__)
    parser.add_argument("rev", help="git revision whose kernels/ to compare with (e.g. HEAD~1)")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args(argv)

    import kernels
    from bench.kernels_features import feature_inputs
    from export.onnx_tools import paired_rounds

    _, tables, user, cptr, cands, rptr, recent, ages = feature_inputs(args.items)
    with tempfile.TemporaryDirectory() as tmp:
        old = _load_rev(args.rev, Path(tmp))
        print(f"kernels at {args.rev} against this tree; {args.items:,} items, 500 candidates")
        print(f"| case | {args.rev} | this tree | {args.rev} / this tree (quartiles) |")
        print("|---|---|---|---|")
        for name, feats in _cases().items():
            spec = kernels.FeatureSpec(tuple(feats))
            out_a = np.empty((cands.shape[0], spec.n_features), np.float32)
            out_b = np.empty_like(out_a)

            def run_old(spec=spec, out=out_a):  # type: ignore[no-untyped-def]
                return old.assemble_features(  # type: ignore[attr-defined]
                    spec, tables, user, cptr, cands, rptr, recent, ages, out
                )

            def run_new(spec=spec, out=out_b):  # type: ignore[no-untyped-def]
                return kernels.assemble_features(
                    spec, tables, user, cptr, cands, rptr, recent, ages, out
                )

            np.testing.assert_allclose(run_old(), run_new(), rtol=2e-5, atol=1e-5)
            ta, tb = paired_rounds(run_old, run_new, args.rounds, args.calls)
            a, b, q = np.median(ta), np.median(tb), np.percentile(ta / tb, [25, 50, 75])
            print(
                f"| {name} | {a / 1e6:.4f} ms | {b / 1e6:.4f} ms "
                f"| {q[1]:.3f}x ({q[0]:.3f}-{q[2]:.3f}) |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
