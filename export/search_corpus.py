"""The query student's distillation corpus: query-like texts, each later embedded by the teacher.

Built from TRAINING items' descriptions and the clothing reviews only (`build_corpus` is never
given a held-out item), in five kinds:

- `description`: a training item's whole description;
- `span`: one to four consecutive words of one;
- `words`: two or three of its words in a random order, some misspelt (the known-item query
  recipe, on training items);
- `title`: a review title (from the Women's E-Commerce Clothing Reviews), some misspelt;
- `review_span`: two to six consecutive words of a review's text (everyday English: "a gift for
  my mother", "perfect for a summer party").

Then every text equal to an evaluation query or a held-out description (compared by
`word_key`: the same words in any order) is dropped, and the drop is counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from export.data import load_reviews
from export.search_data import (
    MISSPELL_P,
    SearchData,
    eligible_words,
    known_item_query,
    misspell,
    normalise,
    word_key,
)

__all__ = ["CORPUS_SIZES", "Corpus", "build_corpus", "corpus_for", "review_texts"]

# texts per kind, per tier: the teacher embeds every one (its cost sets the corpus size)
CORPUS_SIZES = {
    "quick": {"span": 200, "words": 300, "title": 200, "review_span": 100},
    "preview": {"span": 1500, "words": 2000, "title": 1500, "review_span": 1000},
    "full": {"span": 9000, "words": 12000, "title": 14000, "review_span": 9000},
}


@dataclass
class Corpus:
    texts: list[str]
    kinds: list[str]
    dropped: int = 0  # texts equal to an evaluation query or a held-out description
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)


def review_texts() -> tuple[list[str], list[str]]:
    """(review titles, review texts) of the cleaned clothing reviews, normalised."""
    df, _ = load_reviews()
    titles = [normalise(t) for t in df["Title"].fillna("") if str(t).strip()]
    return titles, [normalise(t) for t in df["Review Text"].fillna("")]


# each generator returns (source, text) pairs: the text and what it was made from before any
# typo, both checked against the forbidden texts


def _spans(descs: list[str], n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        w = descs[int(rng.integers(0, len(descs)))].split()
        k = int(rng.integers(1, 5))
        i = int(rng.integers(0, max(1, len(w) - k + 1)))
        span = " ".join(w[i : i + k])
        out.append((span, span))
    return out


def _words(descs: list[str], n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        q = known_item_query(descs[int(rng.integers(0, len(descs)))], rng, MISSPELL_P)
        if q is not None:
            out.append(q)
    return out


def _titles(titles: list[str], n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    uniq = list(dict.fromkeys(titles))
    picked = [uniq[i] for i in rng.permutation(len(uniq))[:n]]
    return [
        (
            t,
            " ".join(
                misspell(w, rng) if w.isalpha() and rng.random() < 0.1 else w for w in t.split()
            ),
        )
        for t in picked
    ]


def _review_spans(reviews: list[str], n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        sentences = re.split(r"[.!?;]", reviews[int(rng.integers(0, len(reviews)))])
        w = sentences[int(rng.integers(0, len(sentences)))].split()
        if len(w) < 2:
            continue
        k = int(rng.integers(2, 7))
        i = int(rng.integers(0, max(1, len(w) - k + 1)))
        span = " ".join(w[i : i + k]).strip(" ,")
        out.append((span, span))
    return out


def build_corpus(
    train_descriptions: list[str],
    titles: list[str],
    reviews: list[str],
    forbidden: list[str],
    sizes: dict[str, int],
    seed: int,
) -> Corpus:
    """The corpus from training descriptions and reviews; `forbidden` texts (evaluation queries,
    held-out descriptions) never appear in it, in any word order."""

    def rng(kind: int) -> np.random.Generator:  # one stream per kind: a smaller tier's corpus
        return np.random.default_rng([seed, 7, kind])  # is a prefix of a larger one's

    descs = [normalise(d) for d in train_descriptions if eligible_words(d)]
    parts = {
        "description": [(d, d) for d in dict.fromkeys(descs)],
        "span": _spans(descs, sizes["span"], rng(1)),
        "words": _words(descs, sizes["words"], rng(2)),
        "title": _titles(titles, sizes["title"], rng(3)),
        "review_span": _review_spans(reviews, sizes["review_span"], rng(4)),
    }
    banned = {word_key(t) for t in forbidden}
    seen: set[str] = set()
    texts, kinds, dropped = [], [], 0
    for kind, part in parts.items():
        for source, t in part:
            t = normalise(t)
            if not t or t in seen:
                continue
            seen.add(t)
            if word_key(t) in banned or word_key(source) in banned:
                dropped += 1
                continue
            texts.append(t)
            kinds.append(kind)
    counts = {k: kinds.count(k) for k in parts}
    return Corpus(texts, kinds, dropped, counts)


def corpus_for(
    data: SearchData, titles: list[str], reviews: list[str], sizes: dict[str, int], seed: int
) -> Corpus:
    """The family's corpus: `build_corpus` over the TRAINING items of `data` only, every
    evaluation query and held-out description forbidden."""
    texts = data.catalogue.texts
    return build_corpus(
        [texts[i] for i in data.items["train"].tolist()],
        titles,
        reviews,
        forbidden=data.eval_queries() + data.held_out_texts(),
        sizes=sizes,
        seed=seed,
    )
