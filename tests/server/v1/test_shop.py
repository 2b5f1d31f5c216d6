"""/v1/classify, /v1/search and /v1/recommend over quick-exported models, in-process."""

from __future__ import annotations

import json

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.settings import Settings

# a loaded test machine must not turn into 504s; budgets are tested with explicit small values
GENEROUS = {"recommend": 5000.0, "search": 5000.0, "classify": 5000.0, "score": 5000.0}


@pytest.fixture(scope="module")
def client(shop_repo):
    with TestClient(
        create_app(Settings(model_repository=str(shop_repo), device="cpu", budgets_ms=GENEROUS))
    ) as c:
        yield c


@pytest.fixture(scope="module")
def catalog(shop_repo):
    folder = shop_repo / "recommend" / "1"
    ids = json.loads((folder / "item_ids.json").read_text())
    return ids


def test_classify_each_task(client, shop_repo):
    for task, labels in (
        ("sentiment", {"negative", "neutral", "positive"}),
        ("recommended", {"yes", "no"}),
    ):
        r = client.post(
            "/v1/classify",
            json={
                "texts": ["Love this dress, fits perfectly", "Terrible quality, returned it"],
                "task": task,
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["results"]) == 2
        for res in body["results"]:
            assert set(res["scores"]) == labels and res["label"] in labels
            assert sum(res["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert body["model_versions"] == {f"classify_{task}": "1"}
        assert "tokenize;dur=" in r.headers["server-timing"]
    depts = json.loads((shop_repo / "classify_department" / "1" / "labels.json").read_text())
    r = client.post(
        "/v1/classify", json={"texts": ["warm sweater for winter"], "task": "department"}
    )
    assert r.status_code == 200 and r.json()["results"][0]["label"] in depts


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"texts": [], "task": "sentiment"}, "$.texts"),
        ({"texts": [""], "task": "sentiment"}, "$.texts[0]"),
        ({"texts": ["x"] * 10_000, "task": "sentiment"}, "$.texts"),
        ({"texts": ["x" * 5001], "task": "sentiment"}, "$.texts[0]"),
        ({"texts": ["fine"], "task": "colour"}, "$.task"),
        ({"texts": "fine", "task": "sentiment"}, "$.texts"),
    ],
)
def test_classify_bad_input(client, body, needle):
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 400 and needle in r.json()["error"], r.text


def test_search_returns_products_within_filters(client):
    r = client.post("/v1/search", json={"query": "heart candle holder", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 5 and body["degraded"] is False
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert set(body["model_versions"]) == {"search", "search_encoder"}
    cheap = client.post(
        "/v1/search", json={"query": "heart candle holder", "k": 10, "filters": {"price_max": 1.0}}
    ).json()
    assert cheap["items"] and all(i["price"] <= 1.0 for i in cheap["items"])
    for stage in ("tokenize", "encode", "retrieve"):
        assert f"{stage};dur=" in r.headers["server-timing"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"query": ""}, 400, "$.query"),
        ({"query": "x" * 1_000_000}, 400, "$.query"),
        ({"query": "mug", "k": 0}, 400, "$.k"),
        ({"query": "mug", "k": 10_000}, 400, "$.k"),
        ({"query": "mug", "filters": {"price_min": 5, "price_max": 1}}, 400, "price_min"),
        ({"query": "mug", "filters": {"price_min": -1}}, 400, "$.filters.price_min"),
    ],
)
def test_search_bad_input(client, body, status, needle):
    r = client.post("/v1/search", json=body)
    assert r.status_code == status and needle in r.json()["error"], r.text


def test_recommend_from_history(client, catalog):
    history = catalog[:3]
    r = client.post("/v1/recommend", json={"history": history + ["NOT-AN-ITEM"], "k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 10
    assert body["ignored_items"] == ["NOT-AN-ITEM"]
    assert not set(history) & {i["item_id"] for i in body["items"]}  # exclude_history by default
    assert "query_encoder" in body["model_versions"]
    assert "retrieve;dur=" in r.headers["server-timing"]
    kept = client.post(
        "/v1/recommend",
        json={"history": history, "k": 100, "filters": {"exclude_history": False, "price_max": 5}},
    ).json()
    assert all(i["price"] <= 5 for i in kept["items"])


def test_recommend_unknown_history_falls_back_to_popularity(client):
    r = client.post(
        "/v1/recommend", json={"history": ["nope-1", "nope-2"], "user_id": "unknown-user", "k": 5}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 5 and body["ignored_items"] == ["nope-1", "nope-2"]
    empty = client.post("/v1/recommend", json={"k": 5}).json()
    assert [i["item_id"] for i in empty["items"]] == [i["item_id"] for i in body["items"]]
    assert "popularity;dur=" in r.headers["server-timing"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"history": "abc"}, "$.history"),
        ({"history": [1, 2]}, "$.history[0]"),
        ({"history": [], "k": 101}, "$.k"),
        ({"history": [], "filters": {"exclude_history": "no"}}, "$.filters.exclude_history"),
        ({"history": [], "budget_ms": -1}, "$.budget_ms"),
    ],
)
def test_recommend_bad_input(client, body, needle):
    r = client.post("/v1/recommend", json=body)
    assert r.status_code == 400 and needle in r.json()["error"], r.text


def test_budget_too_small_is_504_never_500(client, catalog):
    r = client.post(
        "/v1/recommend",
        json={"history": catalog[:2], "budget_ms": 1},
        headers={"X-Request-Timeout-Ms": "0.001"},
    )
    assert r.status_code == 504, r.text


def test_recommend_ranks_candidates_with_the_ranker(client, catalog):
    r = client.post("/v1/recommend", json={"history": catalog[5:9], "user_id": "17850", "k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["degraded"] is False and "ranker" in body["model_versions"]
    assert (
        "features;dur=" in r.headers["server-timing"] and "rank;dur=" in r.headers["server-timing"]
    )
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_recommend_degrades_to_retrieval_order_when_ranking_cannot_fit(
    client, catalog, monkeypatch
):
    ranker = client.app.state.repository.get("ranker")
    monkeypatch.setattr(ranker.latency, "expected_ns", lambda rows: 60e9)  # "a minute per batch"
    r = client.post("/v1/recommend", json={"history": catalog[5:9], "k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["degraded"] is True and len(body["items"]) == 10
    assert "rank;dur=" not in r.headers["server-timing"]


def test_classify_splits_requests_larger_than_the_models_batch(shop_repo, tmp_path):
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(shop_repo / "classify_sentiment", repo / "classify_sentiment")
    cfg = repo / "classify_sentiment" / "config.toml"
    text = cfg.read_text()
    text = text.replace("max_batch_size = 64", "max_batch_size = 8")
    text = "\n".join(
        line for line in text.splitlines() if not line.startswith("preferred_batch_size")
    )
    cfg.write_text(text)
    with TestClient(
        create_app(Settings(model_repository=str(repo), device="cpu", budgets_ms=GENEROUS))
    ) as c:
        r = c.post(
            "/v1/classify",
            json={"texts": [f"review number {i}" for i in range(20)], "task": "sentiment"},
        )
        assert r.status_code == 200, r.text
        assert len(r.json()["results"]) == 20
