"""What every /v1 answer must satisfy, over the fake shop (tests/server/http/test_v1_routes.py)
and over the trained quick repository (tests/e2e/test_v1_quick_repo.py) alike: the checks and the
bad bodies both suites send."""

from __future__ import annotations

import numpy as np
import pytest

from tests.server.pipelines.shop import SESSION

# a loaded test machine must not turn into 504s; budgets are tested with explicit small values
GENEROUS = {"recommend": 5000.0, "search": 5000.0, "classify": 5000.0, "score": 5000.0}

SCORE_FIELDS = {
    "probability",
    "label",
    "threshold",
    "base",
    "explanation",
    "model_versions",
    "warnings",
}
TASK_LABELS = {
    "sentiment": {"negative", "neutral", "positive"},
    "recommended": {"yes", "no"},
}
REVIEWS = ["Love this dress, fits perfectly", "Terrible quality, returned it"]

# (body, what the 400's error names), whatever the models behind the pipeline
CLASSIFY_BAD = [
    ({"texts": [], "task": "sentiment"}, "$.texts"),
    ({"texts": [""], "task": "sentiment"}, "$.texts[0]"),
    ({"texts": ["x"] * 10_000, "task": "sentiment"}, "$.texts"),
    ({"texts": ["x" * 5001], "task": "sentiment"}, "$.texts[0]"),
    ({"texts": "fine", "task": "sentiment"}, "$.texts"),
]
SEARCH_BAD = [
    ({"query": ""}, "$.query"),
    ({"query": "x" * 1_000_000}, "$.query"),
    ({"query": "mug", "k": 0}, "$.k"),
    ({"query": "mug", "k": 10_000}, "$.k"),
    ({"query": "mug", "filters": {"price_min": 5, "price_max": 1}}, "price_min"),
    ({"query": "mug", "filters": {"price_min": -1}}, "$.filters.price_min"),
]
RECOMMEND_BAD = [
    ({"history": "abc"}, "$.history"),
    ({"history": [1, 2]}, "$.history[0]"),
    ({"history": [], "k": 101}, "$.k"),
    ({"history": [], "filters": {"exclude_history": "no"}}, "$.filters.exclude_history"),
    ({"history": [], "budget_ms": -1}, "$.budget_ms"),
]


def ok(r) -> dict:
    """The body of a 200."""
    assert r.status_code == 200, r.text
    return r.json()


def timing(r) -> str:
    return r.headers["server-timing"]


def assert_descending(items: list[dict]) -> None:
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)


def assert_score_explained(r) -> dict:
    """A /v1/score answer whose explanation adds up: base + contributions is the logit."""
    body = ok(r)
    assert set(body) == SCORE_FIELDS
    contribs = [e["contribution"] for e in body["explanation"]]
    assert len(contribs) == 17
    assert [abs(c) for c in contribs] == sorted((abs(c) for c in contribs), reverse=True)
    logit = body["base"] + sum(contribs)
    assert body["probability"] == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)
    assert body["label"] == (body["probability"] >= body["threshold"])
    for stage in ("features", "model", "total"):
        assert f"{stage};dur=" in timing(r)
    return body


def assert_page_value_raises_the_probability(client) -> None:
    low = client.post("/v1/score", json={"session": SESSION}).json()["probability"]
    high = client.post(
        "/v1/score", json={"session": {**SESSION, "PageValues": 80.0, "Month": "Nov"}}
    ).json()["probability"]
    assert high > low


def classify_reviews(client, task: str, version: str):
    """Classify REVIEWS with one task: a label and scores summing to 1 for each review."""
    r = client.post("/v1/classify", json={"texts": REVIEWS, "task": task})
    body = ok(r)
    assert len(body["results"]) == 2
    for res in body["results"]:
        assert set(res["scores"]) == TASK_LABELS[task] and res["label"] in TASK_LABELS[task]
        assert sum(res["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["model_versions"] == {f"classify_{task}": version}
    assert "tokenize;dur=" in timing(r)
    return r


def recommend_from_history(client, history: list[str]) -> tuple:
    """(response, body) of k=10 after `history` plus an unknown item, and the body of k=100
    with history kept and price_max 5; what both answers must be is checked here."""
    r = client.post("/v1/recommend", json={"history": [*history, "NOT-AN-ITEM"], "k": 10})
    body = ok(r)
    assert len(body["items"]) == 10
    assert body["ignored_items"] == ["NOT-AN-ITEM"]
    assert not set(history) & {i["item_id"] for i in body["items"]}  # exclude_history by default
    assert "retrieve;dur=" in timing(r)
    kept = client.post(
        "/v1/recommend",
        json={"history": history, "k": 100, "filters": {"exclude_history": False, "price_max": 5}},
    ).json()
    assert all(i["price"] <= 5 for i in kept["items"])
    return r, body, kept


def recommend_unknown_history(client) -> tuple:
    """(response, body) for a history and user the shop has never seen: popularity, k=5."""
    r = client.post(
        "/v1/recommend", json={"history": ["nope-1", "nope-2"], "user_id": "unknown-user", "k": 5}
    )
    body = ok(r)
    assert len(body["items"]) == 5 and body["ignored_items"] == ["nope-1", "nope-2"]
    assert "popularity;dur=" in timing(r)
    return r, body
