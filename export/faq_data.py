"""The customer-service data (issue 13, `data/faq/SOURCE.md`): the knowledge base the shop owns
(`entries.jsonl`: id, intent, question, answer, alternatives) and the held-out customer
questions (`heldout_questions.jsonl`: id, question, intent or null = out of scope), split once,
with a fixed seed and stratified by intent (out of scope as its own stratum), into validation
(every choice) and test (the card's rows, read once). No held-out question is ever trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.card import ExportError
from export.data import DATA_DIR

__all__ = [
    "ENTRIES",
    "HELDOUT",
    "OUT_OF_SCOPE",
    "SPLIT_SEED",
    "Entry",
    "FaqData",
    "Questions",
    "load_entries",
    "load_faq_data",
    "load_questions",
    "split_questions",
]

ENTRIES = DATA_DIR / "faq" / "entries.jsonl"
HELDOUT = DATA_DIR / "faq" / "heldout_questions.jsonl"
SPLIT_SEED = 20261130  # fixed (not --seed): every build is judged on the same test questions
VALID_SHARE = 0.5
OUT_OF_SCOPE = "__out_of_scope__"  # the stratum of the questions whose intent is null


@dataclass(frozen=True)
class Entry:
    id: str
    intent: str
    question: str
    answer: str
    alternatives: tuple[str, ...] = ()

    @property
    def phrasings(self) -> list[str]:
        """The question and its alternative phrasings, in that order (what is embedded)."""
        return [self.question, *self.alternatives]


def _jsonl(path: Path) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc}") from None
    out = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as exc:
                raise ExportError(f"{path}:{n}: not JSON: {exc}") from None
    return out


def load_entries(path: Path = ENTRIES) -> list[Entry]:
    """The knowledge base; a missing field, an empty text or a duplicate id names its line."""
    out, seen = [], set()
    for n, r in enumerate(_jsonl(path), 1):
        for f in ("id", "intent", "question", "answer"):
            if not isinstance(r.get(f), str) or not r[f].strip():
                raise ExportError(f"{path}: entry {n}: `{f}` must be a non-empty string")
        alts = r.get("alternatives", [])
        if not isinstance(alts, list) or not all(isinstance(a, str) and a.strip() for a in alts):
            raise ExportError(f"{path}: entry {n}: `alternatives` must be a list of strings")
        if r["id"] in seen:
            raise ExportError(f"{path}: entry {n}: duplicate id {r['id']!r}")
        seen.add(r["id"])
        out.append(Entry(r["id"], r["intent"], r["question"], r["answer"], tuple(alts)))
    if len(out) < 2:
        raise ExportError(f"{path}: a knowledge base needs at least two entries")
    return out


@dataclass(frozen=True)
class Questions:
    """Held-out questions: texts, intents (None = out of scope) and ids."""

    ids: list[str]
    texts: list[str]
    intents: list[str | None]

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, rows: np.ndarray) -> Questions:
        r = rows.tolist()
        return Questions(
            [self.ids[i] for i in r], [self.texts[i] for i in r], [self.intents[i] for i in r]
        )

    @property
    def in_scope(self) -> np.ndarray:
        return np.array([i is not None for i in self.intents], bool)


def load_questions(path: Path = HELDOUT) -> Questions:
    rows = _jsonl(path)
    return Questions(
        [str(r["id"]) for r in rows],
        [str(r["question"]) for r in rows],
        [r["intent"] for r in rows],
    )


def split_questions(q: Questions, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """{"valid", "test"}: disjoint row indices, stratified by intent (out of scope its own
    stratum): each stratum is shuffled with `seed` and its first half (rounded up) is
    validation."""
    rng = np.random.default_rng(seed)
    strata = [i if i is not None else OUT_OF_SCOPE for i in q.intents]
    valid, test = [], []
    for s in sorted(set(strata)):
        rows = np.array([i for i, x in enumerate(strata) if x == s])
        rows = rows[rng.permutation(len(rows))]
        cut = int(np.ceil(len(rows) * VALID_SHARE))
        valid.extend(rows[:cut].tolist())
        test.extend(rows[cut:].tolist())
    return {"valid": np.array(sorted(valid)), "test": np.array(sorted(test))}


@dataclass(frozen=True)
class FaqData:
    entries: list[Entry]
    questions: dict[str, Questions]  # "valid", "test"
    intents: list[str]  # the knowledge base's intents, sorted
    source: Path

    @property
    def phrasings(self) -> tuple[list[str], np.ndarray]:
        """(every entry's phrasings in entry order, indptr int64 [n_entries + 1])."""
        texts = [p for e in self.entries for p in e.phrasings]
        counts = [len(e.phrasings) for e in self.entries]
        return texts, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @property
    def entry_intents(self) -> np.ndarray:
        """int64 [n_entries]: each entry's intent row in `intents`."""
        return np.array([self.intents.index(e.intent) for e in self.entries], np.int64)


def load_faq_data(path: Path | None = None, heldout: Path = HELDOUT) -> FaqData:
    """The knowledge base at `path` (default the demo's) and the split held-out questions; every
    held-out intent must be one of the knowledge base's (else the evaluation means nothing)."""
    entries = load_entries(path or ENTRIES)
    intents = sorted({e.intent for e in entries})
    q = load_questions(heldout)
    missing = sorted({i for i in q.intents if i is not None} - set(intents))
    if missing:
        raise ExportError(
            f"{path or ENTRIES}: the held-out questions ({heldout}) use intents {missing} that "
            "no entry has: evaluate a knowledge base on questions written for its intents"
        )
    split = split_questions(q)
    return FaqData(entries, {k: q.take(v) for k, v in split.items()}, intents, path or ENTRIES)
