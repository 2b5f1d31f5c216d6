"""The answer student's distillation corpus: question-like texts made ONLY from the knowledge base
entries, each labelled with the entry it came from (its intent trains the intent heads), and
each later embedded by the teacher (the student's target). As `search_corpus` does for products:

- `question`, `alternative`: an entry's phrasings as written;
- `answer`: one sentence of its answer;
- `drop`: a phrasing with one or two words dropped;
- `order`: a phrasing with its words in another order (or two neighbours swapped);
- `typo`: a phrasing with one or two words misspelt (`search_data.misspell`);
- `span`: three to eight consecutive words of an answer sentence.

No held-out customer question is ever read into it: `build_corpus` gets their texts only to
drop any generated text equal to one of them (by `word_key`: the same words in any order), and
counts the drops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from export.faq_data import Entry
from export.search_data import misspell, normalise, word_key

__all__ = ["CORPUS_SIZES", "FaqCorpus", "answer_sentences", "build_corpus"]

# generated texts per kind and tier (the written phrasings and answer sentences are always in)
CORPUS_SIZES = {
    "quick": {"drop": 150, "order": 100, "typo": 150, "span": 100},
    "preview": {"drop": 1500, "order": 1000, "typo": 1500, "span": 1000},
    "full": {"drop": 6000, "order": 4000, "typo": 6000, "span": 4000},
}
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass
class FaqCorpus:
    texts: list[str]
    entry: list[int]  # the entry row each text came from
    kinds: list[str]
    dropped: int = 0  # generated texts equal to a held-out question (by word_key)
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)


def answer_sentences(answer: str) -> list[str]:
    return [s for s in _SENTENCE.split(answer.strip()) if len(s.split()) >= 3]


def _drop(words: list[str], rng: np.random.Generator) -> str:
    if len(words) < 3:
        return " ".join(words)
    k = 1 if len(words) < 6 or rng.random() < 0.5 else 2
    gone = set(rng.choice(len(words), k, replace=False).tolist())
    return " ".join(w for i, w in enumerate(words) if i not in gone)


def _order(words: list[str], rng: np.random.Generator) -> str:
    w = list(words)
    if len(w) >= 2 and rng.random() < 0.5:  # two neighbours swapped: a typed slip
        i = int(rng.integers(0, len(w) - 1))
        w[i], w[i + 1] = w[i + 1], w[i]
        return " ".join(w)
    return " ".join(w[i] for i in rng.permutation(len(w)))


def _typo(words: list[str], rng: np.random.Generator) -> str:
    long = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not long:
        return " ".join(words)
    k = min(len(long), 1 if rng.random() < 0.6 else 2)
    hit = set(rng.choice(long, k, replace=False).tolist())
    return " ".join(misspell(w, rng) if i in hit else w for i, w in enumerate(words))


def _span(sentence: str, rng: np.random.Generator) -> str:
    w = sentence.split()
    k = int(rng.integers(3, 9))
    i = int(rng.integers(0, max(1, len(w) - k + 1)))
    return " ".join(w[i : i + k]).strip(" ,.")


def _generated(entries: list[Entry], sizes: dict[str, int], seed: int):
    """(kind, entry row, text) for the generated kinds, one random stream per kind."""
    phrasings = [(e, p.split()) for e, ent in enumerate(entries) for p in ent.phrasings]
    sentences = [(e, s) for e, ent in enumerate(entries) for s in answer_sentences(ent.answer)]
    makers = {"drop": _drop, "order": _order, "typo": _typo}
    for n, kind in enumerate(("drop", "order", "typo", "span"), 1):
        rng = np.random.default_rng([seed, 13, n])
        for _ in range(sizes.get(kind, 0)):
            if kind == "span":
                e, s = sentences[int(rng.integers(0, len(sentences)))]
                yield kind, e, _span(s, rng)
            else:
                e, words = phrasings[int(rng.integers(0, len(phrasings)))]
                yield kind, e, makers[kind](words, rng)


def build_corpus(
    entries: list[Entry], forbidden: list[str], sizes: dict[str, int], seed: int
) -> FaqCorpus:
    """The corpus of `entries` only; texts whose words equal a `forbidden` text's (the held-out
    questions) are dropped, in any word order, and counted. Texts are normalised (lower-case,
    single-spaced) and unique."""
    written = [
        (kind, e, t)
        for e, ent in enumerate(entries)
        for kind, t in [
            ("question", ent.question),
            *[("alternative", a) for a in ent.alternatives],
            *[("answer", s) for s in answer_sentences(ent.answer)],
        ]
    ]
    banned = {word_key(t) for t in forbidden}
    seen: set[str] = set()
    out = FaqCorpus([], [], [])
    for kind, e, t in [*written, *_generated(entries, sizes, seed)]:
        t = normalise(t)
        if not t or t in seen:
            continue
        seen.add(t)
        if word_key(t) in banned:
            out.dropped += 1
            continue
        out.texts.append(t)
        out.entry.append(e)
        out.kinds.append(kind)
    kinds = ("question", "alternative", "answer", "drop", "order", "typo", "span")
    out.counts = {k: out.kinds.count(k) for k in kinds}
    return out
