"""The search family's data and its leakage rules: held-out items are split by description, the
evaluation sets are fixed by their own seed, and no evaluation query or held-out item's title
reaches the query student's distillation corpus."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from export.search_corpus import CORPUS_SIZES, corpus_for
from export.search_data import (
    QUERIES_TSV,
    eligible_words,
    known_item_query,
    known_item_set,
    load_search_data,
    normalise,
    shopper_sets,
    word_key,
)


@pytest.fixture(scope="module")
def data():
    return load_search_data("full", quick=True)


def _corpus(data, titles=("love this dress",), reviews=("it was a lovely gift for my mother",)):
    return corpus_for(data, list(titles), list(reviews), CORPUS_SIZES["quick"], seed=0)


def test_held_out_items_are_split_by_description(data):
    texts = data.catalogue.texts
    rows = {s: set(v.tolist()) for s, v in data.items.items()}
    assert sum(map(len, rows.values())) == len(texts)
    assert not (rows["train"] & rows["valid"] or rows["train"] & rows["test"])
    sides = {s: {texts[i] for i in r} for s, r in rows.items()}
    assert not (sides["train"] & sides["valid"]) and not (sides["train"] & sides["test"])
    assert not sides["valid"] & sides["test"]


def test_known_item_queries_come_from_their_items_with_a_fixed_seed(data):
    texts = data.catalogue.texts
    for split in ("valid", "test"):
        qs = data.known[split]
        again = known_item_set(data.catalogue, data.items[split], split)
        assert qs.texts == again.texts  # seed-fixed, not drawn from --seed
        held = set(data.items[split].tolist())
        for q, rel in zip(qs.texts, qs.relevant, strict=True):
            assert rel <= held and 2 <= len(q.split()) <= 3
            words = set(eligible_words(texts[next(iter(rel))]))
            # every word is one of the title's, or one typo away from one (same first letter)
            assert all(w in words or any(w[0] == v[0] for v in words) for w in q.split())


def test_shopper_queries_split_in_fixed_halves(data):
    all_ids = pd.read_csv(QUERIES_TSV, sep="\t", dtype=str)["id"].tolist()
    v, t = data.shopper["valid"].ids, data.shopper["test"].ids
    assert len(all_ids) == 110 and len(v) == len(t) == 55
    assert sorted(v + t) == sorted(all_ids)
    assert v == shopper_sets(data.catalogue, None)["valid"].ids  # the same halves every build


def test_no_evaluation_query_or_held_out_title_reaches_the_corpus(data):
    shopper = data.shopper["test"].texts[0]
    known = data.known["valid"].texts[0]
    held = data.held_out_texts()[0]
    reordered = " ".join(reversed(shopper.split()))
    # a review title that IS a shopper query (another word order) and one that is a held-out title
    corpus = _corpus(data, titles=[reordered, held.upper(), known, "lovely soft sweater"])
    banned = {word_key(t) for t in data.eval_queries() + data.held_out_texts()}
    assert not banned & {word_key(t) for t in corpus.texts}
    assert corpus.dropped >= 3
    assert corpus.counts["title"] == 1  # "lovely soft sweater" (perhaps misspelt) stays


def test_held_out_titles_never_feed_the_corpus(data):
    """Mark every held-out product's title with a word found nowhere else: no corpus text
    (spans, word picks, misspellings of training titles) may carry it."""
    held = set(data.items["valid"].tolist()) | set(data.items["test"].tolist())
    desc = [d + " zqxjv" if i in held else d for i, d in enumerate(data.catalogue.descriptions)]
    marked = dataclasses.replace(
        data, catalogue=dataclasses.replace(data.catalogue, descriptions=desc)
    )
    corpus = _corpus(marked)
    assert corpus.counts["description"] > 0 and corpus.counts["words"] > 0
    assert not [t for t in corpus.texts if "zqx" in t]


def test_known_item_query_recipe():
    rng = np.random.default_rng(0)
    assert known_item_query("SET OF 3 CAKE TINS", rng, 0.0)[1] in {"cake tins", "tins cake"}
    assert known_item_query("A MUG", rng, 0.0) is None  # one eligible word only
    q = known_item_query("WHITE HANGING HEART T-LIGHT HOLDER", rng, 0.0)
    assert q is not None and q[0] == q[1]
    assert set(q[1].split()) <= {"white", "hanging", "heart", "light", "holder"}
    assert normalise("  A  b ") == "a b" and word_key("b a") == word_key("a b")
