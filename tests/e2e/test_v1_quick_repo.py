"""/v1/score, /v1/classify, /v1/search and /v1/recommend in-process over the models of
`shopserve export all --quick` (torch-trained, seconds each): the pipelines are the repository's
`pipeline.toml` folders. The same routes over fake models run without torch in
tests/server/http/test_v1_routes.py."""

from __future__ import annotations

import shutil

import msgspec
import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.contract.model_config import encode_config, load_config
from server.contract.pipelines import encode_pipeline_spec, load_pipeline_spec
from server.settings import Settings
from tests.server.http import v1_checks as checks
from tests.server.pipelines.shop import SESSION

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(shop_repo):
    with TestClient(
        create_app(
            Settings(model_repository=str(shop_repo), device="cpu", budgets_ms=checks.GENEROUS)
        )
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
    body = checks.assert_score_explained(client.post("/v1/score", json={"session": SESSION}))
    _, spec = load_pipeline_spec(shop_repo / "score" / "pipeline.toml")
    assert body["threshold"] == pytest.approx(spec.threshold)  # chosen by export, in the spec


def test_high_page_value_raises_the_probability(client):
    checks.assert_page_value_raises_the_probability(client)


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
    for task in ("sentiment", "recommended"):
        checks.classify_reviews(client, task, "1")
    _, spec = load_pipeline_spec(shop_repo / "classify" / "pipeline.toml")
    depts = {h.task: h.labels for h in spec.heads}["department"]
    r = client.post(
        "/v1/classify", json={"texts": ["warm sweater for winter"], "task": "department"}
    )
    assert r.status_code == 200 and r.json()["results"][0]["label"] in depts


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        *checks.CLASSIFY_BAD,
        # tasks are the spec's heads now, not a fixed list in the schema
        ({"texts": ["fine"], "task": "colour"}, "task: 'colour' is not served"),
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
        create_app(Settings(model_repository=str(repo), device="cpu", budgets_ms=checks.GENEROUS))
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
    body = checks.ok(r)
    assert len(body["items"]) == 5 and body["degraded"] is False
    checks.assert_descending(body["items"])
    assert set(body["model_versions"]) == {"search", "search_encoder"}
    cheap = client.post(
        "/v1/search", json={"query": "heart candle holder", "k": 10, "filters": {"price_max": 1.0}}
    ).json()
    assert cheap["items"] and all(i["price"] <= 1.0 for i in cheap["items"])
    for stage in ("tokenize", "encode", "retrieve"):
        assert f"{stage};dur=" in checks.timing(r)


@pytest.mark.parametrize(("body", "needle"), checks.SEARCH_BAD)
def test_search_bad_input(client, body, needle):
    r = client.post("/v1/search", json=body)
    assert r.status_code == 400 and needle in r.json()["error"], r.text


# -- /v1/recommend --------------------------------------------------------------------------------


def test_recommend_from_history(client, catalog):
    _, body, _ = checks.recommend_from_history(client, catalog[:3])
    assert "query_encoder" in body["model_versions"]


def test_recommend_unknown_history_falls_back_to_popularity(client):
    _, body = checks.recommend_unknown_history(client)
    empty = client.post("/v1/recommend", json={"k": 5}).json()
    assert [i["item_id"] for i in empty["items"]] == [i["item_id"] for i in body["items"]]


@pytest.mark.parametrize(
    ("body", "needle"),
    checks.RECOMMEND_BAD,
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
    body = checks.ok(r)
    assert body["degraded"] is False and "ranker" in body["model_versions"]
    assert "features;dur=" in checks.timing(r) and "rank;dur=" in checks.timing(r)
    checks.assert_descending(body["items"])


def test_recommend_degrades_to_retrieval_order_when_ranking_cannot_fit(
    client, catalog, monkeypatch
):
    ranker = client.app.state.repository.get("ranker")
    monkeypatch.setattr(ranker.latency, "expected_ns", lambda rows: 60e9)  # "a minute per batch"
    r = client.post("/v1/recommend", json={"history": catalog[5:9], "k": 10})
    body = checks.ok(r)
    assert body["degraded"] is True and len(body["items"]) == 10
    assert "rank;dur=" not in checks.timing(r)
