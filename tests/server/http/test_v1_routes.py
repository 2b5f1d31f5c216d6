"""Every /v1 route in-process over the fake shop (tests/server/pipelines/fakes.py): no torch, no
trained weights. `create_app(..., models=FakeModelSource)` gives the pipelines their models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.contract.pipelines import SearchSpec
from server.settings import Settings
from tests.server.http.helpers import assert_error
from tests.server.http.v1_checks import (
    CLASSIFY_BAD,
    GENEROUS,
    RECOMMEND_BAD,
    SEARCH_BAD,
    assert_descending,
    assert_page_value_raises_the_probability,
    assert_score_explained,
    classify_reviews,
    ok,
    recommend_from_history,
    recommend_unknown_history,
    timing,
)
from tests.server.pipelines.fakes import FakeModelSource
from tests.server.pipelines.shop import SESSION, Shop, build_shop, write_pipeline


def _client(shop: Shop, models: FakeModelSource | None = None) -> TestClient:
    settings = Settings(model_repository=str(shop.repo), device="cpu", budgets_ms=GENEROUS)
    return TestClient(create_app(settings, models=models or shop.models))


@pytest.fixture(scope="module")
def v1shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return build_shop(tmp_path_factory.mktemp("v1shop"))


@pytest.fixture(scope="module")
def v1(v1shop: Shop):
    with _client(v1shop) as c:
        yield c


# -- /v1/score ------------------------------------------------------------------------------------


def test_score_explains_exactly(v1):
    r = v1.post("/v1/score", json={"session": SESSION}, headers={"X-Request-Id": "abc"})
    body = assert_score_explained(r)
    assert body["threshold"] == 0.4  # the ScoreSpec's, from score/pipeline.toml
    assert body["model_versions"] == {"risk": "7"}
    assert r.headers["x-request-id"] == "abc"


def test_high_page_value_raises_the_probability(v1):
    assert_page_value_raises_the_probability(v1)


@pytest.mark.parametrize(
    ("session", "needle"),
    [
        ({**SESSION, "Month": "Foo"}, "$.session.Month"),
        ({k: v for k, v in SESSION.items() if k != "Weekend"}, "Weekend"),
        ({**SESSION, "BounceRates": "x"}, "$.session.BounceRates"),
        ({**SESSION, "BounceRates": 3.0}, "$.session.BounceRates"),
        ({**SESSION, "Administrative": -1}, "$.session.Administrative"),
        ({**SESSION, "Weekend": "yes"}, "$.session.Weekend"),
        ({**SESSION, "Colour": "red"}, "Colour"),
    ],
)
def test_bad_sessions_are_400_naming_the_field(v1, session, needle):
    assert_error(v1.post("/v1/score", json={"session": session}), 400, needle)


def test_score_bad_bodies(v1):
    assert_error(v1.post("/v1/score", content=b'{"session": {"BounceRates": NaN}}'), 400)
    assert_error(v1.post("/v1/score", content=b"{not json"), 400, "request body")
    assert_error(
        v1.post("/v1/score", json={"session": SESSION, "budget_ms": 0}), 400, "$.budget_ms"
    )
    assert_error(v1.post("/v1/score", json={"session": SESSION, "extra": 1}), 400, "extra")
    unknown_visitor = v1.post("/v1/score", json={"session": {**SESSION, "VisitorType": "Robot"}})
    assert unknown_visitor.status_code == 200  # unseen category -> the <unk> slot, documented


# -- /v1/classify ---------------------------------------------------------------------------------


def test_classify_each_task(v1):
    for task, version in (("sentiment", "1"), ("recommended", "4")):
        assert "model;dur=" in timing(classify_reviews(v1, task, version))
    r = v1.post("/v1/classify", json={"texts": ["love it", "bad, broke"], "task": "sentiment"})
    assert [x["label"] for x in r.json()["results"]] == ["positive", "negative"]


def test_classify_splits_requests_larger_than_the_models_batch(v1):
    r = v1.post(
        "/v1/classify",
        json={"texts": [f"review number {i}" for i in range(20)], "task": "sentiment"},
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 20


@pytest.mark.parametrize(
    ("body", "needle"),
    [*CLASSIFY_BAD, ({"texts": ["fine"]}, "task"), ({"texts": ["fine"], "task": ""}, "$.task")],
)
def test_classify_bad_input(v1, body, needle):
    assert_error(v1.post("/v1/classify", json=body), 400, needle)


def test_classify_unknown_task_is_400_listing_the_served_ones(v1):
    body = assert_error(
        v1.post("/v1/classify", json={"texts": ["fine"], "task": "colour"}),
        400,
        "task",
        "colour",
        "recommended",
        "sentiment",
    )
    assert body["code"] == "invalid_input"


# -- /v1/search -----------------------------------------------------------------------------------


def test_search_returns_products_within_filters(v1, v1shop):
    r = v1.post("/v1/search", json={"query": "white heart", "k": 5})
    body = ok(r)
    assert len(body["items"]) == 5 and body["degraded"] is False
    assert set(body["items"][0]) == {"item_id", "title", "price", "score"}
    assert body["items"][0]["title"] == "white heart"
    assert_descending(body["items"])
    assert body["model_versions"] == {"search": "1", "search_encoder": "3"}
    cheap = v1.post(
        "/v1/search", json={"query": "white heart", "k": 10, "filters": {"price_max": 4.0}}
    ).json()
    assert len(cheap["items"]) == 4 and all(i["price"] <= 4.0 for i in cheap["items"])
    for stage in ("tokenize", "encode", "retrieve"):
        assert f"{stage};dur=" in timing(r)


@pytest.mark.parametrize(
    ("body", "needle"),
    [*SEARCH_BAD, ({"query": "mug", "filters": {"colour": "red"}}, "colour"), ({"k": 3}, "query")],
)
def test_search_bad_input(v1, body, needle):
    assert_error(v1.post("/v1/search", json=body), 400, needle)


# -- /v1/recommend --------------------------------------------------------------------------------


def test_recommend_from_history(v1, v1shop):
    _, body, kept = recommend_from_history(v1, v1shop.item_ids[:3])
    assert body["model_versions"] == {"recommend": "1", "query_encoder": "2", "ranker": "5"}
    assert len(kept["items"]) == 5


def test_recommend_unknown_history_falls_back_to_popularity(v1, v1shop):
    _, body = recommend_unknown_history(v1)
    popular = [v1shop.item_ids[i] for i in np.argsort(-v1shop.popularity, kind="stable")[:5]]
    assert [i["item_id"] for i in body["items"]] == popular
    empty = v1.post("/v1/recommend", json={"k": 5}).json()
    assert [i["item_id"] for i in empty["items"]] == popular
    cheap = v1.post("/v1/recommend", json={"k": 5, "filters": {"price_min": 46}}).json()
    assert len(cheap["items"]) == 5 and all(i["price"] >= 46 for i in cheap["items"])


def test_recommend_ranks_candidates_with_the_ranker(v1, v1shop):
    r = v1.post("/v1/recommend", json={"history": v1shop.item_ids[5:9], "user_id": "U1", "k": 10})
    body = ok(r)
    assert body["degraded"] is False and "ranker" in body["model_versions"]
    assert "features;dur=" in timing(r) and "rank;dur=" in timing(r)
    assert_descending(body["items"])
    prices = [i["price"] for i in body["items"]]
    assert prices == sorted(prices)  # the fake ranker prefers cheap items


def test_recommend_degrades_to_retrieval_order_when_ranking_cannot_fit(v1, v1shop, monkeypatch):
    monkeypatch.setattr(v1shop.models["ranker"], "ns_per_row", 10**12)  # "1000 s per row"
    r = v1.post("/v1/recommend", json={"history": v1shop.item_ids[5:9], "k": 10})
    body = ok(r)
    assert body["degraded"] is True and len(body["items"]) == 10
    assert "rank;dur=" not in timing(r)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        *RECOMMEND_BAD,
        ({"history": ["x" * 65]}, "$.history[0]"),
        ({"history": [], "filters": {"price_min": 9, "price_max": 2}}, "price_min"),
    ],
)
def test_recommend_bad_input(v1, body, needle):
    assert_error(v1.post("/v1/recommend", json=body), 400, needle)


# -- deadlines ------------------------------------------------------------------------------------

CALLS = {
    "score": ("risk", {"session": SESSION}),
    "classify": ("classify_sentiment", {"texts": ["good"], "task": "sentiment"}),
    "search": ("search_encoder", {"query": "red mug"}),
    "recommend": ("query_encoder", {"history": ["SKU001"]}),
}


@pytest.mark.parametrize("endpoint", sorted(CALLS))
def test_a_budget_spent_is_504_never_500(v1, v1shop, monkeypatch, endpoint):
    model, body = CALLS[endpoint]
    monkeypatch.setattr(v1shop.models[model], "delay_s", 0.2)
    r = v1.post(f"/v1/{endpoint}", json={**body, "budget_ms": 1})
    assert assert_error(r, 504, "budget of 1 ms")["code"] == "deadline_exceeded"
    # the model is still waiting when the deadline passes (as in the batcher's queue)
    r = v1.post(f"/v1/{endpoint}", json=body, headers={"X-Request-Timeout-Ms": "20"})
    assert assert_error(r, 504)["code"] == "deadline_exceeded"
    assert v1.post(f"/v1/{endpoint}", json=body).status_code == 200  # the default is generous


@pytest.mark.parametrize("value", ["0", "-5", "0.001", "abc", "nan", "inf"])
def test_timeout_header_out_of_range_is_400(v1, value):
    r = v1.post("/v1/score", json={"session": SESSION}, headers={"X-Request-Timeout-Ms": value})
    assert_error(r, 400, "X-Request-Timeout-Ms")


# -- /v1/pipelines and pipelines that cannot be served ----------------------------------------------


def test_pipelines_lists_state_versions_and_gates(v1):
    r = v1.get("/v1/pipelines")
    assert r.status_code == 200, r.text
    rows = {p["name"]: p for p in r.json()["pipelines"]}
    assert list(rows) == ["classify", "recommend", "score", "search"]
    for name, p in rows.items():
        assert (p["kind"], p["version"], p["state"], p["reason"]) == (name, "1", "READY", "")
    assert rows["search"]["models"] == [
        {"name": "search_encoder", "version": "3", "gate": "passed"}
    ]
    assert rows["recommend"]["models"] == [
        {"name": "query_encoder", "version": "2", "gate": "failed"},
        {"name": "ranker", "version": "5", "gate": "none"},
    ]
    assert [m["name"] for m in rows["classify"]["models"]] == [
        "classify_sentiment",
        "classify_recommended",
    ]


def test_pipelines_are_not_v2_models(v1):
    names = {row["name"] for row in v1.post("/v2/repository/index").json()}
    assert not names & {"search", "recommend", "classify", "score"}
    assert_error(v1.get("/v2/models/search"), 404)


def test_broken_pipelines_are_unavailable_and_answer_503(tmp_path: Path):
    shop = build_shop(tmp_path)
    emb = shop.folder("search") / "product_embeddings.npy"
    np.save(emb, np.load(emb)[:-5])  # truncated: 45 rows for 50 items
    shutil.copy(shop.folder("recommend") / "item_embeddings.npy", shop.repo / "outside.npy")
    spec = shop.specs["recommend"]
    write_pipeline(
        shop.repo,
        "recommend",
        type(spec)(
            query_encoder=spec.query_encoder,
            item_embeddings="../../outside.npy",
            ranking=spec.ranking,
        ),
    )
    with _client(shop) as c:
        rows = {p["name"]: p for p in c.get("/v1/pipelines").json()["pipelines"]}
        assert rows["search"]["state"] == "UNAVAILABLE"
        assert "product_embeddings.npy has shape [45, 16]" in rows["search"]["reason"]
        assert rows["recommend"]["state"] == "UNAVAILABLE"
        assert "'../../outside.npy' must be a relative name" in rows["recommend"]["reason"]
        assert rows["score"]["state"] == rows["classify"]["state"] == "READY"
        body = assert_error(c.post("/v1/search", json={"query": "mug"}), 503, "product_embeddings")
        assert body["code"] == "not_ready"
        assert_error(c.post("/v1/recommend", json={"history": []}), 503, "recommend")
        assert c.post("/v1/score", json={"session": SESSION}).status_code == 200


def test_ranker_not_served_answers_in_retrieval_order(tmp_path: Path):
    shop = build_shop(tmp_path)
    models = FakeModelSource({k: v for k, v in shop.models.models.items() if k != "ranker"})
    with _client(shop, models) as c:
        body = ok(c.post("/v1/recommend", json={"history": shop.item_ids[5:9], "k": 10}))
        assert body["degraded"] is True and len(body["items"]) == 10
        assert body["model_versions"] == {"recommend": "1", "query_encoder": "2"}
        assert_descending(body["items"])  # retrieval scores, retrieval order
        (rec,) = [p for p in c.get("/v1/pipelines").json()["pipelines"] if p["name"] == "recommend"]
        assert rec["state"] == "READY"
        assert {"name": "ranker", "version": "", "gate": "missing"} in rec["models"]


def test_a_pipeline_that_is_not_there_is_404(tmp_path: Path):
    shop = build_shop(tmp_path)
    shutil.rmtree(shop.repo / "score")
    write_pipeline(shop.repo, "classify", SearchSpec(encoder="search_encoder"))  # wrong kind
    shutil.copytree(shop.folder("search"), shop.folder("classify"), dirs_exist_ok=True)
    with _client(shop) as c:
        assert_error(c.post("/v1/score", json={"session": SESSION}), 404, "score")
        body = assert_error(
            c.post("/v1/classify", json={"texts": ["x"], "task": "sentiment"}), 503, "search"
        )
        assert body["code"] == "not_ready"
        assert_error(c.get("/v1/nothing"), 404)
        assert_error(c.get("/v1/score"), 405)


def test_a_full_model_queue_refuses_its_pipeline_before_the_body(v1, v1shop, monkeypatch):
    monkeypatch.setattr(v1shop.models["risk"], "overloaded", True)
    # the body is not even valid: it is never read
    r = v1.post("/v1/score", content=b"{not json")
    assert_error(r, 429, "queue is full")
    assert r.headers["retry-after"] == "1"
    # other pipelines still answer
    assert v1.post("/v1/search", json={"query": "red mug"}).status_code == 200
