"""The search family's data: the product catalogue, its split into training and held-out items,
the two evaluation sets and the query student's distillation corpus.

- Catalogue: every Online Retail product (StockCode as the recommender uses it, the description
  cleaned by `export.data`, the median price). All of it is searchable and embedded by the teacher.
- Items are split by their normalised description (products sharing one stay on one side): a
  fixed-seed sample is held out, half for validation, half for test; the rest are training items.
- (a) Known-item queries: per held-out description, two or three of its words in a random order,
  some misspelt; relevant = the products with that description.
- (b) Shopper queries: `data/search-relevance/shopper_queries.tsv`, split by a fixed seed into a
  validation and a test half; relevant = the judged pairs of `judgments.tsv` (`search_judgments`).
- Distillation corpus (`search_corpus`): built from TRAINING items' descriptions and the clothing
  reviews only, minus any text equal to an evaluation query or a held-out description.

The evaluation sets use their own fixed seed (`EVAL_SEED`), not `--seed`: the judgments are made
once for these queries and items.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from export.data import DATA_DIR, load_retail, retail_sequences

__all__ = [
    "EVAL_SEED",
    "QUERIES_TSV",
    "Catalogue",
    "QuerySet",
    "SearchData",
    "eligible_words",
    "known_item_query",
    "known_item_set",
    "load_catalogue",
    "load_search_data",
    "misspell",
    "normalise",
    "shopper_sets",
    "word_key",
]

EVAL_SEED = 20261130  # the evaluation sets' seed (the day the shopper queries were written)
RELEVANCE_DIR = DATA_DIR / "search-relevance"
QUERIES_TSV = RELEVANCE_DIR / "shopper_queries.tsv"
HELD_OUT = {"quick": 40, "preview": 250, "full": 250}  # held-out descriptions per split
QUICK_ITEMS = 400  # --quick searches the first products only
MISSPELL_P = 0.3  # share of known-item query words with one typo (words of 4+ letters)
STOP = {"of", "and", "the", "with", "in", "for", "a", "to", "on", "set", "pack", "box"}
_KEYS = "qwertyuiopasdfghjklzxcvbnm"


def normalise(text: str) -> str:
    """Lower-case, single-spaced."""
    return " ".join(str(text).lower().split())


def word_key(text: str) -> str:
    """Order-insensitive key of a text: its words sorted (a word-order change keeps the key)."""
    return " ".join(sorted(re.findall(r"[a-z0-9]+", text.lower())))


def eligible_words(description: str) -> list[str]:
    """The words a shopper would pick from a title: alphabetic, 3+ letters, not a stop word."""
    words = re.findall(r"[a-z]+", description.lower())
    return list(dict.fromkeys(w for w in words if len(w) >= 3 and w not in STOP))


def misspell(word: str, rng: np.random.Generator) -> str:
    """One typo: a dropped, doubled, swapped or replaced letter (never the first letter)."""
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 1))
    op = int(rng.integers(0, 4))
    if op == 0:
        return word[:i] + word[i + 1 :]
    if op == 1:
        return word[:i] + word[i] + word[i:]
    if op == 2:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    other = [c for c in _KEYS if c != word[i]]
    return word[:i] + other[int(rng.integers(0, len(other)))] + word[i + 1 :]


def known_item_query(
    description: str, rng: np.random.Generator, p_typo: float
) -> tuple[str, str] | None:
    """Two or three of the description's words in a random order, each misspelt with
    probability `p_typo`: (the words as picked, the query); None when it has fewer than two
    eligible words."""
    words = eligible_words(description)
    if len(words) < 2:
        return None
    k = min(len(words), int(rng.integers(2, 4)))
    picked = [words[i] for i in rng.permutation(len(words))[:k]]
    typed = [misspell(w, rng) if rng.random() < p_typo else w for w in picked]
    return " ".join(picked), " ".join(typed)


@dataclass
class Catalogue:
    codes: list[str]  # StockCode, the item id every model of the shop uses
    descriptions: list[str]  # as the shop shows them
    prices: np.ndarray  # float32, median unit price

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def texts(self) -> list[str]:
        """What is indexed and embedded: the normalised descriptions."""
        return [normalise(d) for d in self.descriptions]


def load_catalogue(quick: bool = False) -> Catalogue:
    retail, _ = load_retail()
    _, items, _ = retail_sequences(retail)
    if quick:
        items = items.iloc[:QUICK_ITEMS]
    desc = items["Description"].fillna("").str.strip().tolist()
    return Catalogue(items["StockCode"].tolist(), desc, items["price"].to_numpy(np.float32))


@dataclass
class QuerySet:
    """Queries with the catalogue rows relevant to each (a judged set: rows absent from
    `judged` are unjudged, counted as not relevant)."""

    name: str
    ids: list[str]
    texts: list[str]
    relevant: list[set[int]]
    judged: list[set[int]] | None = None  # shopper sets: every judged row per query
    clean: list[str] | None = None  # known-item sets: each query before its typos

    def __len__(self) -> int:
        return len(self.texts)


def _split_items(cat: Catalogue, n_held: int) -> dict[str, np.ndarray]:
    """Catalogue rows of the training, validation and test items, by normalised description."""
    texts = cat.texts
    uniq = sorted(set(texts))
    order = np.random.default_rng(EVAL_SEED).permutation(len(uniq))
    side = {}
    for rank, j in enumerate(order):
        side[uniq[j]] = "valid" if rank < n_held else "test" if rank < 2 * n_held else "train"
    rows = {s: [] for s in ("train", "valid", "test")}
    for i, t in enumerate(texts):
        rows[side[t]].append(i)
    return {s: np.array(v, np.int64) for s, v in rows.items()}


def known_item_set(cat: Catalogue, rows: np.ndarray, split: str) -> QuerySet:
    rng = np.random.default_rng([EVAL_SEED, 1 if split == "valid" else 2])
    texts = cat.texts
    by_text: dict[str, set[int]] = {}
    for i in rows.tolist():
        by_text.setdefault(texts[i], set()).add(i)
    ids, queries, clean, relevant = [], [], [], []
    for desc in sorted(by_text):
        q = known_item_query(desc, rng, MISSPELL_P)
        if q is not None:
            ids.append(f"{split}{len(ids):03d}")
            clean.append(q[0])
            queries.append(q[1])
            relevant.append(by_text[desc])
    return QuerySet(f"known-item {split}", ids, queries, relevant, clean=clean)


def shopper_sets(cat: Catalogue, judgments: pd.DataFrame | None) -> dict[str, QuerySet]:
    """The shopper queries' validation and test halves (fixed seed), relevance from
    `judgments` (query id, StockCode, relevant); rows of products outside `cat` are ignored."""
    q = pd.read_csv(QUERIES_TSV, sep="\t", dtype=str)
    order = np.random.default_rng(EVAL_SEED).permutation(len(q))
    half = len(q) // 2
    row = {c: i for i, c in enumerate(cat.codes)}
    rel: dict[str, set[int]] = {}
    judged: dict[str, set[int]] = {}
    if judgments is not None:
        for qid, code, r in judgments[["query_id", "StockCode", "relevant"]].itertuples(False):
            if code in row:
                judged.setdefault(qid, set()).add(row[code])
                if int(r):
                    rel.setdefault(qid, set()).add(row[code])
    out = {}
    for split, idx in (("valid", order[:half]), ("test", order[half:])):
        sub = q.iloc[np.sort(idx)]
        out[split] = QuerySet(
            f"shopper {split}",
            sub["id"].tolist(),
            sub["query"].tolist(),
            [rel.get(i, set()) for i in sub["id"]],
            [judged.get(i, set()) for i in sub["id"]],
        )
    return out


def load_judgments(path: Path | None = None) -> pd.DataFrame | None:
    path = path or RELEVANCE_DIR / "judgments.tsv"
    if not path.exists():
        return None
    return pd.read_csv(path, sep="\t", dtype={"query_id": str, "StockCode": str, "relevant": int})


@dataclass
class SearchData:
    catalogue: Catalogue
    items: dict[str, np.ndarray]  # train / valid / test catalogue rows
    known: dict[str, QuerySet]  # valid / test
    shopper: dict[str, QuerySet]  # valid / test

    def eval_sets(self, split: str) -> dict[str, QuerySet]:
        return {"known-item": self.known[split], "shopper": self.shopper[split]}

    def eval_queries(self) -> list[str]:
        """Every evaluation query (known-item ones also before their typos)."""
        out = []
        for s in ("valid", "test"):
            for q in self.eval_sets(s).values():
                out += q.texts + (q.clean or [])
        return out

    def held_out_texts(self) -> list[str]:
        texts = self.catalogue.texts
        return [texts[i] for s in ("valid", "test") for i in self.items[s].tolist()]


def load_search_data(tier: str, quick: bool) -> SearchData:
    cat = load_catalogue(quick)
    items = _split_items(cat, HELD_OUT["quick" if quick else tier])
    known = {s: known_item_set(cat, items[s], s) for s in ("valid", "test")}
    return SearchData(cat, items, known, shopper_sets(cat, load_judgments()))
