"""The systems the search card compares, scored on every query set; the fusion chosen on
validation; the judging pool of the shopper queries.

`SystemScores` holds, per (split, set), one dense score matrix [n_queries, n_items] per base
system: `tfidf` (scikit-learn, the baseline), the lexical indices the server can serve
(`lex:tfidf`, `lex:bm25`, `kernels.lexical`) and the semantic searches (`teacher`, `student`,
`student-int8`: query embeddings x the teacher's product embeddings). Hybrids are fused from
them on demand (`kernels.lexical.fuse_scores`, the server's own function).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.search_data import QuerySet, SearchData
from export.search_eval import (
    WEIGHTS,
    WeightScore,
    choose_weight,
    lexical_scores,
    ranked,
    relevance,
    semantic_scores,
    tfidf_sklearn_scores,
)
from kernels.lexical import LexicalIndex, fuse_scores

__all__ = ["LEXICAL_KINDS", "Fusion", "SystemScores", "choose_fusion", "write_pool"]

LEXICAL_KINDS = ("tfidf", "bm25")  # what the served lexical half may be
SPLITS = ("valid", "test")
SETS = ("known-item", "shopper")


@dataclass(frozen=True)
class Fusion:
    lexical: str  # a LEXICAL_KINDS entry
    weight: float  # of the lexical half
    table: dict = field(default_factory=dict)  # kind -> weight -> WeightScore (validation)
    targets: dict = field(default_factory=dict)  # set -> [TF-IDF, teacher-only] valid recall@10

    @property
    def score(self) -> WeightScore:
        return self.table[self.lexical][self.weight]


def choose_fusion(valid: dict[str, dict[str, np.ndarray]], sets: dict[str, QuerySet]) -> Fusion:
    """The lexical index and weight of the served hybrid, from VALIDATION only: `valid` is set ->
    system -> validation scores (`tfidf`, `teacher`, the `lex:*` indices and the `student`
    semantic search), `sets` the validation query sets. Issue 10's targets come first: the
    choice meeting the most of "hybrid >= TF-IDF" and "hybrid >= teacher-only semantic" on
    each set, then the best mean recall@10 (ties: tfidf first, see `choose_weight`)."""
    targets = {
        s: [relevance(ranked(valid[s][ref]), sets[s])["recall@10"] for ref in ("tfidf", "teacher")]
        for s in sets
    }
    best, table = None, {}
    for kind in LEXICAL_KINDS:
        w, by_w = choose_weight(
            {s: (valid[s][f"lex:{kind}"], valid[s]["student"], sets[s]) for s in sets}, targets
        )
        table[kind] = by_w
        key = (by_w[w].met, by_w[w].recall, by_w[w].ndcg)
        if best is None or key > best[2]:
            best = (kind, w, key)
    assert best is not None
    return Fusion(best[0], best[1], table, targets)


@dataclass
class SystemScores:
    data: SearchData
    scores: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def lexical(cls, data: SearchData, indices: dict[str, LexicalIndex]) -> SystemScores:
        """The lexical systems on every set: the scikit-learn baseline and the served indices."""
        out = cls(data)
        texts = data.catalogue.texts
        for split in SPLITS:
            for name, qs in data.eval_sets(split).items():
                d = out.scores.setdefault((split, name), {})
                d["tfidf"] = tfidf_sklearn_scores(texts, qs.texts)
                for kind, index in indices.items():
                    d[f"lex:{kind}"] = lexical_scores(index, qs.texts)
        return out

    def add_semantic(self, system: str, queries: dict[tuple[str, str], np.ndarray], products):
        """`system`'s query embeddings per (split, set) against the product embeddings."""
        for key, q in queries.items():
            self.scores[key][system] = semantic_scores(q, products)

    def hybrid(self, key: tuple[str, str], semantic: str, fusion: Fusion) -> np.ndarray:
        d = self.scores[key]
        return fuse_scores(d[f"lex:{fusion.lexical}"], d[semantic], fusion.weight)

    def valid_inputs(self) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, QuerySet]]:
        """What the fusion may be chosen on: the validation scores and sets, nothing of test."""
        return (
            {s: self.scores[("valid", s)] for s in SETS},
            self.data.eval_sets("valid"),
        )

    def systems(self, key: tuple[str, str], fusion: Fusion) -> dict[str, np.ndarray]:
        """Every card system's scores on one (split, set)."""
        d = self.scores[key]
        out = {k: d[k] for k in ("tfidf", "teacher", "student", "student-int8") if k in d}
        out["bm25"] = d["lex:bm25"]
        out["teacher-hybrid"] = self.hybrid(key, "teacher", fusion)
        out["hybrid"] = self.hybrid(key, "student", fusion)
        if "student-int8" in d:
            out["hybrid-int8"] = self.hybrid(key, "student-int8", fusion)
        return out

    def relevance(self, split: str, fusion: Fusion) -> dict[str, dict[str, dict[str, float]]]:
        """system -> set -> metrics on `split`."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for name, qs in self.data.eval_sets(split).items():
            for system, s in self.systems((split, name), fusion).items():
                out.setdefault(system, {})[name] = relevance(ranked(s), qs)
        return out

    def pool(self, fusion: Fusion) -> dict[str, set[int]]:
        """Shopper query id -> catalogue rows in the top 10 of any card system (and, on
        validation, of every hybrid the fusion choice compared)."""
        out: dict[str, set[int]] = {}
        for split in SPLITS:
            key, qs = (split, "shopper"), self.data.shopper[split]
            mats = list(self.systems(key, fusion).values())
            if split == "valid":
                d = self.scores[key]
                for kind in LEXICAL_KINDS:
                    mats += [fuse_scores(d[f"lex:{kind}"], d["student"], w) for w in WEIGHTS]
            for m in mats:
                for qid, row in zip(qs.ids, ranked(m).tolist(), strict=True):
                    out.setdefault(qid, set()).update(row)
        return out


def write_pool(path: Path, pool: dict[str, set[int]], data: SearchData) -> int:
    """The pooled pairs not yet judged, as TSV (query id, query, need, StockCode, description)
    for the judge; returns their number."""
    import pandas as pd

    from export.search_data import QUERIES_TSV

    queries = pd.read_csv(QUERIES_TSV, sep="\t", dtype=str).set_index("id")
    cat = data.catalogue
    judged = {
        (qid, cat.codes[r])
        for split in SPLITS
        for qid, rows in zip(data.shopper[split].ids, data.shopper[split].judged or [], strict=True)
        for r in rows
    }
    lines = ["query_id\tquery\tneed\tStockCode\tdescription"]
    for qid in sorted(pool):
        for r in sorted(pool[qid]):
            if (qid, cat.codes[r]) not in judged:
                q = queries.loc[qid]
                lines.append(
                    f"{qid}\t{q['query']}\t{q['need']}\t{cat.codes[r]}\t{cat.descriptions[r]}"
                )
    path.write_text("\n".join(lines) + "\n")
    return len(lines) - 1
