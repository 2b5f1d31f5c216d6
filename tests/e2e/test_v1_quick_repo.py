"""/v1/score, /v1/classify, /v1/search and /v1/recommend in-process over the models of
`shopserve export all --quick` (torch-trained, seconds each): the pipelines are the repository's
`pipeline.toml` folders. The same routes over fake models run without torch in
tests/server/http/test_v1_routes.py."""

from __future__ import annotations

import shutil

import msgspec
import numpy as np
import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.contract.model_config import encode_config, load_config
from server.contract.pipelines import encode_pipeline_spec, load_pipeline_spec
from server.settings import Settings
from tests.server.pipelines.shop import SESSION

pytestmark = pytest.mark.slow

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
    ids = msgspec.json.decode((shop_repo / "recommend" / "1" / "item_ids.json").read_bytes())
    return ids


def test_every_pipeline_is_ready(client):
    rows = {p["name"]: p for p in client.get("/v1/pipelines").json()["pipelines"]}
    assert set(rows) >= {"score", "classify", "search", "recommend"}
    for name in ("score", "classify", "search", "recommend"):
        assert rows[name]["state"] == "READY", rows[name]
        assert all(m["version"] for m in rows[name]["models"]), rows[name]


# -- /v1/score ------------------------------------------------------------------------------------


def test_score_explains_exactly(client, shop_repo):
    r = client.post("/v1/score", json={"session": SESSION})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "probability",
        "label",
        "threshold",
        "base",
        "explanation",
        "model_versions",
    }
    contribs = [e["contribution"] for e in body["explanation"]]
    assert len(contribs) == 17
    assert [abs(c) for c in contribs] == sorted((abs(c) for c in contribs), reverse=True)
    logit = body["base"] + sum(contribs)
    assert body["probability"] == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)
    assert body["label"] == (body["probability"] >= body["threshold"])
    _, spec = load_pipeline_spec(shop_repo / "score" / "pipeline.toml")
    assert body["threshold"] == pytest.approx(spec.threshold)  # chosen by export, in the spec
    for stage in ("features", "model", "total"):
        assert f"{stage};dur=" in r.headers["server-timing"]


def test_high_page_value_raises_the_probability(client):
    low = client.post("/v1/score", json={"session": SESSION}).json()["probability"]
    high = client.post(
        "/v1/score", json={"session": {**SESSION, "PageValues": 80.0, "Month": "Nov"}}
    ).json()["probability"]
    assert high > low


# bad sessions (decoding, the same on any model) are tested in-process: tests/server/http


def test_nan_and_budget_errors(client):
    r = client.post("/v1/score", content=b'{"session": {"BounceRates": NaN}}')
    assert r.status_code == 400
    assert client.post("/v1/score", json={"session": SESSION, "budget_ms": 0}).status_code == 400
    # the header is a number of ms >= 1 (one rule for V1 and V2): below that is a 400
    r = client.post(
        "/v1/score", json={"session": SESSION}, headers={"X-Request-Timeout-Ms": "0.001"}
    )
    assert r.status_code == 400 and "X-Request-Timeout-Ms" in r.json()["error"]
    r = client.post("/v1/score", json={"session": SESSION, "budget_ms": 1})
    assert r.status_code in (200, 504), r.text  # a 1 ms budget: in time or a 504, never a 500
    if r.status_code == 504:
        assert r.json()["code"] == "deadline_exceeded"
    unknown_visitor = client.post(
        "/v1/score", json={"session": {**SESSION, "VisitorType": "Robot"}}
    )
    assert unknown_visitor.status_code == 200  # unseen category -> the <unk> slot, documented


# -- /v1/classify ---------------------------------------------------------------------------------


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
    _, spec = load_pipeline_spec(shop_repo / "classify" / "pipeline.toml")
    depts = {h.task: h.labels for h in spec.heads}["department"]
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
        # tasks are the spec's heads now, not a fixed list in the schema
        ({"texts": ["fine"], "task": "colour"}, "task: 'colour' is not served"),
        ({"texts": "fine", "task": "sentiment"}, "$.texts"),
    ],
)
def test_classify_bad_input(client, body, needle):
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 400 and needle in r.json()["error"], r.text


def test_classify_splits_requests_larger_than_the_models_batch(shop_repo, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(shop_repo / "classify_sentiment", repo / "classify_sentiment")
    cfg_path = repo / "classify_sentiment" / "config.toml"
    cfg = load_config(cfg_path)
    db = cfg.dynamic_batching
    cfg = msgspec.structs.replace(
        cfg,
        max_batch_size=8,
        dynamic_batching=msgspec.structs.replace(db, preferred_batch_size=[]) if db else None,
    )
    cfg_path.write_bytes(encode_config(cfg))
    # the classify pipeline over the sentiment head only
    _, spec = load_pipeline_spec(shop_repo / "classify" / "pipeline.toml")
    heads = [h for h in spec.heads if h.task == "sentiment"]
    (repo / "classify").mkdir()
    shutil.copytree(shop_repo / "classify" / "1", repo / "classify" / "1")
    (repo / "classify" / "pipeline.toml").write_bytes(
        encode_pipeline_spec("classify", msgspec.structs.replace(spec, heads=heads))
    )
    with TestClient(
        create_app(Settings(model_repository=str(repo), device="cpu", budgets_ms=GENEROUS))
    ) as c:
        r = c.post(
            "/v1/classify",
            json={"texts": [f"review number {i}" for i in range(20)], "task": "sentiment"},
        )
        assert r.status_code == 200, r.text
        assert len(r.json()["results"]) == 20


# -- /v1/search -----------------------------------------------------------------------------------


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


# -- /v1/recommend --------------------------------------------------------------------------------


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
    r = client.post("/v1/recommend", json={"history": catalog[:2], "budget_ms": 1})
    assert r.status_code in (200, 504), r.text  # in time (ranking skipped) or a 504
    if r.status_code == 200:
        assert r.json()["degraded"] is True  # no time left for the ranker
    r = client.post(
        "/v1/recommend",
        json={"history": catalog[:2], "budget_ms": 1},
        headers={"X-Request-Timeout-Ms": "0.001"},
    )
    assert r.status_code == 400, r.text  # below 1 ms the header itself is refused


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
