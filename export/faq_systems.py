"""How an answer system is scored, and every choice it makes on VALIDATION questions only.

A system answers a question with per-entry scores (the best phrasing's cosine, fused with a
lexical score over the entries as search fuses them: `kernels.lexical.fuse_scores`), intent
probabilities, and a hand-off when the best cosine or the intent's probability is under its
threshold. The served pipeline (server/pipelines/answer.py) computes the same numbers.

Metrics (in-scope questions: their intent; out-of-scope: intent null):
- `answer recall@3`: the share of in-scope questions with an entry OF THEIR INTENT among the top 3
  (the held-out questions were written from the intent list, before the entries existed, so
  intent is their only label; an entry of the right intent is the answer a person would pick
  from);
- `answer recall@1`, `intent accuracy` (top-1 of the intent head);
- `handoff precision` / `handoff recall` / `handoff f1`: hand-off against "out of scope", over
  every question of the split, and `in-scope handed off` (the cost of a low threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels.lexical import fuse_scores

__all__ = [
    "WEIGHTS",
    "Handoff",
    "Scores",
    "choose_handoff",
    "choose_weight",
    "entry_cosines",
    "metrics",
]

WEIGHTS = tuple(round(w, 2) for w in np.arange(0.0, 1.0001, 0.05))  # lexical weights tried


def entry_cosines(queries: np.ndarray, phrasings: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """float32 [n_q, n_entries]: the best phrasing cosine per entry. queries float32 [n_q, d] and
    phrasings float32 [n_p, d] unit rows (or scipy sparse TF-IDF rows); indptr int64
    [n_entries + 1]."""
    sims = queries @ phrasings.T
    sims = np.asarray(sims.toarray() if hasattr(sims, "toarray") else sims, np.float32)
    return np.maximum.reduceat(sims, indptr[:-1], axis=1)


@dataclass
class Scores:
    """One system on one split: cosines [n, E], lexical scores [n, E] or None, probs [n, K]."""

    cos: np.ndarray
    lex: np.ndarray | None
    probs: np.ndarray

    def fused(self, weight: float) -> np.ndarray:
        if self.lex is None or weight == 0:
            return self.cos
        return fuse_scores(self.lex, self.cos, weight)

    @property
    def top_cosine(self) -> np.ndarray:
        return self.cos.max(1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(1)


@dataclass(frozen=True)
class Handoff:
    min_cosine: float
    min_confidence: float
    valid_f1: float

    def flags(self, s: Scores) -> np.ndarray:
        return (s.top_cosine < self.min_cosine) | (s.confidence < self.min_confidence)


def _ranks(scores: np.ndarray, entry_intent: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1-based rank of the first entry of each question's intent (stable: lower row first)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    hit = entry_intent[order] == y[:, None]
    return hit.argmax(1) + 1


def answer_recall(scores, entry_intent, y, k: int = 3) -> float:
    inn = y >= 0
    if not inn.any():
        return 0.0
    return float((_ranks(scores[inn], entry_intent, y[inn]) <= k).mean())


def choose_weight(
    valid: dict[str, Scores], entry_intent: np.ndarray, y: np.ndarray
) -> tuple[str, float, dict]:
    """(lexical docs, weight) of the best validation answer recall@3, then MRR, then the smaller
    weight; `valid` maps each lexical index's name to the system's validation Scores. Only
    validation is given: the test split cannot move the choice."""
    best, table = None, {}
    inn = y >= 0
    for name, s in valid.items():
        for w in WEIGHTS if s.lex is not None else (0.0,):
            ranks = _ranks(s.fused(w)[inn], entry_intent, y[inn])
            r3, mrr = float((ranks <= 3).mean()), float((1.0 / ranks).mean())
            table[f"{name} w={w:g}"] = round(r3, 4)
            key = (round(r3, 6), round(mrr, 6), -w)
            if best is None or key > best[0]:
                best = (key, name, w)
    assert best is not None
    return best[1], best[2], table


def _f1(pred: np.ndarray, oos: np.ndarray) -> tuple[float, float, float]:
    tp = float((pred & oos).sum())
    p = tp / max(1.0, float(pred.sum()))
    r = tp / max(1.0, float(oos.sum()))
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def choose_handoff(valid: Scores, oos: np.ndarray) -> Handoff:
    """The thresholds (on the best cosine, on the intent probability) of the best validation
    hand-off F1 (positive: out of scope), then fewer in-scope questions handed off, then the
    lower thresholds. Candidates: no threshold, and midpoints of the validation values."""

    def grid(v: np.ndarray) -> list[float]:
        u = np.unique(v)
        return [-1.0, *((u[:-1] + u[1:]) / 2).tolist()]

    cos, conf = valid.top_cosine, valid.confidence
    best = None
    for tc in grid(cos):
        low_cos = cos < tc
        for tp in [0.0, *grid(conf)[1:]]:
            pred = low_cos | (conf < tp)
            f1 = _f1(pred, oos)[2]
            key = (round(f1, 6), -int((pred & ~oos).sum()), -tc, -tp)
            if best is None or key > best[0]:
                best = (key, tc, tp, f1)
    assert best is not None
    return Handoff(float(best[1]), float(best[2]), round(float(best[3]), 4))


def metrics(
    s: Scores, weight: float, handoff: Handoff, entry_intent: np.ndarray, y: np.ndarray
) -> dict[str, float]:
    """The card's numbers for one system on one split; y int64 [n]: intent row, -1 out of scope."""
    inn, oos = y >= 0, y < 0
    fused = s.fused(weight)
    flags = handoff.flags(s)
    p, r, f1 = _f1(flags, oos)
    return {
        "answer recall@3": round(answer_recall(fused, entry_intent, y, 3), 4),
        "answer recall@1": round(answer_recall(fused, entry_intent, y, 1), 4),
        "intent accuracy": round(float((s.probs[inn].argmax(1) == y[inn]).mean()), 4),
        "handoff precision": round(p, 4),
        "handoff recall": round(r, 4),
        "handoff f1": round(f1, 4),
        "in-scope handed off": round(float(flags[inn].mean()), 4),
    }
