"""The search card's metrics, and the rule that the served fusion (lexical index and weight) is
chosen on validation only: test scores and test judgments never change it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from export.search_data import Catalogue, QuerySet, SearchData
from export.search_eval import choose_weight, ranked, relevance
from export.search_systems import SystemScores, choose_fusion

N_ITEMS, N_QUERIES = 60, 12


def test_relevance_metrics_by_hand():
    qs = QuerySet("t", ["a", "b", "c"], ["x", "y", "z"], [{3}, {0, 1}, set()], judged=None)
    top = np.array([[5, 3, 1], [1, 7, 0], [0, 1, 2]])
    m = relevance(top, qs)
    assert m["queries"] == 2  # a query without a relevant product is not averaged
    assert m["recall@10"] == pytest.approx((1 + 1) / 2)
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1) / 2)
    d = 1 / np.log2(np.arange(2, 5))
    ndcg_a = d[1] / d[0]
    ndcg_b = (d[0] + d[2]) / (d[0] + d[1])
    assert m["ndcg@10"] == pytest.approx((ndcg_a + ndcg_b) / 2, abs=1e-4)


def test_unjudged_products_are_counted():
    qs = QuerySet("t", ["a"], ["x"], [{1}], judged=[{1, 2}])
    assert relevance(np.array([[1, 2, 3, 4]]), qs)["unjudged"] == 2


def test_ranked_breaks_ties_by_row():
    assert ranked(np.array([[0.1, 0.5, 0.5, 0.9]]), 3).tolist() == [[3, 1, 2]]


def _set(name: str, rng) -> QuerySet:
    rel = [{int(r)} for r in rng.integers(0, N_ITEMS, N_QUERIES)]
    return QuerySet(name, [f"{name}{i}" for i in range(N_QUERIES)], ["q"] * N_QUERIES, rel)


def _scores(rng) -> SystemScores:
    """Validation: the lexical index finds the relevant item only half the time, semantics the
    other half, so a middle weight wins; test scores are noise."""
    sets = {
        split: {"known-item": _set("k" + split, rng), "shopper": _set("s" + split, rng)}
        for split in ("valid", "test")
    }
    data = SearchData(
        Catalogue([str(i) for i in range(N_ITEMS)], ["d"] * N_ITEMS, np.ones(N_ITEMS, np.float32)),
        {},
        {s: v["known-item"] for s, v in sets.items()},
        {s: v["shopper"] for s, v in sets.items()},
    )
    out = SystemScores(data)
    for split in ("valid", "test"):
        for name, qs in sets[split].items():
            d = {}
            for system in ("lex:tfidf", "lex:bm25", "student", "tfidf", "teacher"):
                m = rng.random((N_QUERIES, N_ITEMS)).astype(np.float32) * 0.5
                if split == "valid" and system != "lex:bm25":
                    for i, rel in enumerate(qs.relevant):
                        hit = (i % 2 == 0) == (system == "lex:tfidf")
                        m[i, next(iter(rel))] = 1.0 if hit else 0.3
                d[system] = m
            out.scores[(split, name)] = d
    return out


def test_the_fusion_is_chosen_on_validation_and_blind_to_test():
    scores = _scores(np.random.default_rng(0))
    fusion = choose_fusion(*scores.valid_inputs())
    assert fusion.lexical == "tfidf" and 0.0 < fusion.weight < 1.0
    # whatever the test half holds, scores or judgments, the choice is the same
    rng = np.random.default_rng(1)
    for key in [("test", "known-item"), ("test", "shopper")]:
        for system in scores.scores[key]:
            scores.scores[key][system] = rng.random((N_QUERIES, N_ITEMS)).astype(np.float32)
    data = scores.data
    shuffled = {
        s: dataclasses.replace(q, relevant=list(reversed(q.relevant)))
        for s, q in (("test", data.shopper["test"]),)
    }
    scores.data = dataclasses.replace(data, shopper={**data.shopper, **shuffled})
    again = choose_fusion(*scores.valid_inputs())
    assert (again.lexical, again.weight) == (fusion.lexical, fusion.weight)


def test_valid_inputs_hold_validation_only():
    scores = _scores(np.random.default_rng(0))
    valid, sets = scores.valid_inputs()
    for name in ("known-item", "shopper"):
        assert valid[name] is scores.scores[("valid", name)]
        assert sets[name] is scores.data.eval_sets("valid")[name]
    ids = {id(m) for d in valid.values() for m in d.values()}
    test_ids = {id(m) for k, d in scores.scores.items() if k[0] == "test" for m in d.values()}
    assert not ids & test_ids


def test_choose_weight_prefers_the_better_half():
    rng = np.random.default_rng(0)
    qs = _set("v", rng)
    good = rng.random((N_QUERIES, N_ITEMS)).astype(np.float32) * 0.5
    for i, rel in enumerate(qs.relevant):
        good[i, next(iter(rel))] = 1.0
    noise = rng.random((N_QUERIES, N_ITEMS)).astype(np.float32)
    w, table = choose_weight({"s": (good, noise, qs)})
    assert table[w].recall == 1.0 and w > 0.5
    w, _ = choose_weight({"s": (noise, good, qs)})
    assert w < 0.5


def test_choose_weight_puts_the_targets_first():
    """A weight that reaches every set's target beats one with a higher mean recall."""
    rng = np.random.default_rng(0)
    a, b = _set("a", rng), _set("b", rng)
    lex_a = rng.random((N_QUERIES, N_ITEMS)).astype(np.float32) * 0.5
    sem_b = rng.random((N_QUERIES, N_ITEMS)).astype(np.float32) * 0.5
    for i in range(N_QUERIES):
        lex_a[i, next(iter(a.relevant[i]))] = 1.0  # set a: lexical finds all
        sem_b[i, next(iter(b.relevant[i]))] = 1.0  # set b: semantics finds all
    noise = rng.random((N_QUERIES, N_ITEMS)).astype(np.float32) * 0.5
    valid = {"a": (lex_a, noise, a), "b": (noise, sem_b, b)}
    free, _ = choose_weight(valid)
    w, table = choose_weight(valid, {"a": [1.0], "b": [0.0]})
    assert table[w].met == 2 and table[w].recall >= 0.5 and w >= free
