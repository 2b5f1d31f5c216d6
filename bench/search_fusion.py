"""Can any fusion of lexical and semantic scores meet issue 10's four search targets? (hybrid
recall@10 >= TF-IDF's and >= teacher-only semantic search's, on the known-item and on the
shopper validation sets). Builds the search family's teacher embeddings and query student as
`shopserve export search` does (nothing is published), then prints, on VALIDATION only:

1. each base system's recall@10 per set;
2. the linear fusion the server uses (`kernels.lexical.fuse_scores`) by lexical weight, with
   the served student and with the teacher itself as the semantic half;
3. the best of each other fusion form tried over a grid: reciprocal-rank fusion, and a switch
   on the top lexical score (a high lexical weight above a threshold, a low one below).

    python -m bench.search_fusion [--tier full|preview] [--out DIR]

Test is never read. The full tier takes ~4 minutes on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

__all__ = ["main"]

SETS = ("known-item", "shopper")


def _rank(m: np.ndarray) -> np.ndarray:
    """0-based rank of every item per row (0 = best; ties by catalogue row)."""
    order = np.argsort(-m, 1, kind="stable")
    r = np.empty_like(order)
    np.put_along_axis(r, order, np.broadcast_to(np.arange(m.shape[1]), m.shape), 1)
    return r


def rrf(lex: np.ndarray, sem: np.ndarray, w: float, k: float) -> np.ndarray:
    """Weighted reciprocal-rank fusion; a query without a lexical match ranks by semantics."""
    has = lex.max(1, keepdims=True) > 0
    return np.where(has, w / (k + _rank(lex)), 0.0) + (1 - w) / (k + _rank(sem))


def switch(lex: np.ndarray, sem: np.ndarray, hi: float, lo: float, tau: float) -> np.ndarray:
    """The server's linear fusion with a per-query lexical weight: `hi` when the query's best
    raw lexical score is >= tau (it names a product), else `lo`."""
    from kernels.lexical import fuse_scores

    top = lex.max(1)
    out = fuse_scores(lex, sem, lo)
    strong = top >= tau
    if strong.any():
        out[strong] = fuse_scores(lex[strong], sem[strong], hi)
    return out


def _scores(tier: str, out: Path):
    """Validation score matrices per set and system, and the validation query sets."""
    import export.search as S
    from export.options import ExportOptions
    from export.search_onnx import export_student
    from export.search_student import embed_ids
    from export.search_systems import SystemScores
    from export.training import seed_everything

    opts = ExportOptions(out=out, tier=tier)
    seed_everything(opts.seed)
    stage, corpus, targets = S._teacher_stage(opts, tier)
    student, _, corpus_ids = S._distil(stage, corpus, targets)
    ref = embed_ids(student, corpus_ids[:256])
    _, int8, _ = export_student(student, corpus_ids[:256], ref, opts.cache / "search")
    scores = SystemScores.lexical(stage.data, S._indices(stage.data))
    scores.add_semantic("teacher", stage.queries, stage.products)
    scores.add_semantic("student-int8", S._query_embeddings(stage, int8), stage.products)
    return scores.valid_inputs()


def main(argv: list[str] | None = None) -> int:
    from export.search_eval import ranked, relevance
    from kernels.lexical import fuse_scores

    p = argparse.ArgumentParser(prog="python -m bench.search_fusion", description=__doc__)
    p.add_argument("--tier", choices=["full", "preview"], default="full")
    p.add_argument("--out", type=Path, default=Path("/tmp/shopserve-search-fusion"))
    args = p.parse_args(argv)
    valid, sets = _scores(args.tier, args.out)

    def recall(s: str, m: np.ndarray) -> float:
        return relevance(ranked(m), sets[s])["recall@10"]

    target = {s: (recall(s, valid[s]["tfidf"]), recall(s, valid[s]["teacher"])) for s in SETS}

    def judge(fuse, sem: str = "student-int8") -> tuple[int, dict[str, float]]:
        r = {s: recall(s, fuse(valid[s]["lex:tfidf"], valid[s][sem])) for s in SETS}
        return sum(r[s] >= t for s in SETS for t in target[s]), r

    print("validation recall@10, base systems")
    for system in ("tfidf", "lex:bm25", "teacher", "student-int8"):
        print(f"  {system:<14}" + "".join(f"  {s} {recall(s, valid[s][system]):.4f}" for s in SETS))
    print(
        "targets (TF-IDF, teacher-only):", {s: [round(x, 4) for x in t] for s, t in target.items()}
    )
    print("\nlinear fusion (served), lexical = tfidf: weight -> targets met, recall@10 per set")
    print(f"  {'weight':>6}  {'semantic = student-int8':<42}  semantic = teacher")
    for w in np.round(np.arange(0.0, 1.01, 0.1), 2):
        cells = []
        for sem in ("student-int8", "teacher"):
            met, r = judge(lambda lex, s, w=w: fuse_scores(lex, s, w), sem)
            cells.append(f"{met} met, " + ", ".join(f"{s} {r[s]:.4f}" for s in SETS))
        print(f"  {w:>6}  {cells[0]:<42}  {cells[1]}")
    tops = np.concatenate([valid[s]["lex:tfidf"].max(1) for s in SETS])
    forms = {
        "reciprocal-rank": [
            (f"w={w}, k={k}", lambda lex, s, w=w, k=k: rrf(lex, s, w, k))
            for w, k in itertools.product((0.3, 0.4, 0.5, 0.6, 0.7), (5, 10, 30, 60))
        ],
        "lexical-score switch": [
            (
                f"hi={hi}, lo={lo}, tau={tau:.3f}",
                lambda lex, s, a=hi, b=lo, t=tau: switch(lex, s, a, b, t),
            )
            for hi, lo, tau in itertools.product(
                (0.5, 0.6, 0.7, 0.8, 0.9),
                (0.0, 0.1, 0.2, 0.3, 0.4),
                np.quantile(tops, [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]),
            )
        ],
    }
    print("\nother fusions (semantic = student-int8): the best of each grid")
    for form, grid in forms.items():
        met, r, name = max(
            ((*judge(f), n) for n, f in grid), key=lambda x: (x[0], np.mean(list(x[1].values())))
        )
        print(
            f"  {form:<22} {name:<28} {met} of 4 met, " + ", ".join(f"{s} {r[s]:.4f}" for s in SETS)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
