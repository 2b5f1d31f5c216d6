"""The faq family's data rules, without the teacher: the held-out split is disjoint, stratified
and fixed; the corpus never holds a held-out question; every choice reads validation only."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from export.card import ExportError
from export.faq import System
from export.faq_corpus import CORPUS_SIZES, build_corpus
from export.faq_data import OUT_OF_SCOPE, load_entries, load_faq_data, split_questions
from export.faq_systems import Scores, choose_handoff, choose_weight, entry_cosines, metrics
from export.search_data import word_key


@pytest.fixture(scope="module")
def data():
    return load_faq_data()


def test_the_split_is_disjoint_complete_and_stratified(data):
    v, t = data.questions["valid"], data.questions["test"]
    assert not set(v.ids) & set(t.ids)
    assert len(v) + len(t) == 472
    cv = Counter(i or OUT_OF_SCOPE for i in v.intents)
    ct = Counter(i or OUT_OF_SCOPE for i in t.intents)
    assert set(cv) == set(ct) == {*data.intents, OUT_OF_SCOPE}
    for k in cv:  # each stratum halved (validation gets the odd one)
        assert cv[k] - ct[k] in (0, 1), k
    assert cv[OUT_OF_SCOPE] == ct[OUT_OF_SCOPE] == 40


def test_the_split_is_fixed_and_seeded(data):
    q = data.questions["valid"]
    a, b = split_questions(q), split_questions(q)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = split_questions(q, seed=1)
    assert not np.array_equal(a["valid"], c["valid"])


@pytest.mark.parametrize("tier", ["quick", "full"])
def test_the_corpus_never_holds_a_held_out_question(data, tier):
    held = [x for q in data.questions.values() for x in q.texts]
    corpus = build_corpus(data.entries, held, CORPUS_SIZES[tier], seed=0)
    banned = {word_key(x) for x in held}
    assert not [t for t in corpus.texts if word_key(t) in banned]
    assert corpus.dropped > 0  # some entry phrasings equal a held-out question: dropped
    assert len(corpus.texts) == len(set(corpus.texts)) == len(corpus.entry)
    # every text comes from an entry: its label is the entry's intent
    assert set(corpus.entry) <= set(range(len(data.entries)))


def test_the_corpus_is_made_from_the_entries_only(data):
    """A corpus built with no forbidden texts and one built against the held-out questions
    differ only by the dropped texts: the held-out questions add nothing."""
    held = [x for q in data.questions.values() for x in q.texts]
    free = build_corpus(data.entries, [], CORPUS_SIZES["quick"], seed=0)
    ruled = build_corpus(data.entries, held, CORPUS_SIZES["quick"], seed=0)
    assert set(ruled.texts) <= set(free.texts)
    assert len(free.texts) - len(ruled.texts) == ruled.dropped


def test_bad_knowledge_bases_name_the_line(tmp_path: Path):
    good = {"id": "a", "intent": "x", "question": "q?", "answer": "yes."}
    path = tmp_path / "kb.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [good, {**good, "question": ""}]))
    with pytest.raises(ExportError, match="entry 2: `question`"):
        load_entries(path)
    path.write_text("\n".join(json.dumps(r) for r in [good, good]))
    with pytest.raises(ExportError, match="duplicate id"):
        load_entries(path)
    path.write_text("\n".join(json.dumps({**good, "id": i}) for i in "ab"))
    with pytest.raises(ExportError, match="held-out questions"):
        load_faq_data(path)  # its one intent does not cover the held-out questions'


# -- scoring and choices --------------------------------------------------------------------------


def _scores(rng, n: int, e: int = 6, k: int = 3) -> Scores:
    return Scores(
        rng.random((n, e)).astype(np.float32),
        rng.random((n, e)).astype(np.float32),
        rng.dirichlet(np.ones(k), n).astype(np.float32),
    )


def test_entry_cosines_take_the_best_phrasing():
    q = np.array([[1.0, 0.0]], np.float32)
    p = np.array([[0.0, 1.0], [0.6, 0.8], [1.0, 0.0], [-1.0, 0.0]], np.float32)
    got = entry_cosines(q, p, np.array([0, 2, 3, 4]))
    assert got.tolist() == [[pytest.approx(0.6), 1.0, -1.0]]


def test_choices_read_validation_only():
    """The System's choices are the same whatever the test split holds."""
    rng = np.random.default_rng(0)
    entry_intent = np.array([0, 0, 1, 1, 2, 2])
    y = {"valid": rng.integers(-1, 3, 80), "test": rng.integers(-1, 3, 60)}
    valid = {"a": _scores(rng, 80), "b": _scores(rng, 80)}
    picks = []
    for trial in range(3):
        test = {"a": _scores(rng, 60), "b": _scores(rng, 60)}
        y_t = {**y, "test": rng.permutation(y["test"])} if trial else y
        s = System({k: {"valid": valid[k], "test": test[k]} for k in valid}).choose(
            y_t, entry_intent
        )
        picks.append((s.docs, s.weight, s.handoff))
    assert picks[0] == picks[1] == picks[2]


def test_the_handoff_threshold_maximises_validation_f1():
    cos = np.array([[0.9], [0.8], [0.3], [0.2]], np.float32)
    s = Scores(cos, None, np.array([[0.9, 0.1]] * 4, np.float32))
    oos = np.array([False, False, True, True])
    h = choose_handoff(s, oos)
    assert h.min_cosine == pytest.approx(0.55) and h.valid_f1 == 1.0
    m = metrics(s, 0.0, h, np.array([0]), np.array([0, 0, -1, -1]))
    assert m["handoff precision"] == m["handoff recall"] == 1.0
    assert m["in-scope handed off"] == 0.0 and m["answer recall@3"] == 1.0


def test_the_weight_is_the_best_validation_recall():
    entry_intent = np.array([0, 1])
    y = np.array([0, 1])
    cos = np.array([[0.1, 0.9], [0.9, 0.1]], np.float32)  # semantics wrong both times
    lex = np.array([[5.0, 0.0], [0.0, 5.0]], np.float32)  # the lexical half right
    probs = np.full((2, 2), 0.5, np.float32)
    docs, w, _ = choose_weight({"bm25": Scores(cos, lex, probs)}, entry_intent, y)
    assert docs == "bm25" and w > 0.5
    # recall@3 over two entries is always 1: the tie goes to MRR, then to the smaller weight
    assert metrics(Scores(cos, lex, probs), w, choose_handoff(Scores(cos, lex, probs), y < 0),
                   entry_intent, y)["answer recall@1"] == 1.0  # fmt: skip
