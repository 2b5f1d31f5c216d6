"""The shop endpoints through the real server: good requests, and bad input that must be a 4xx
naming the field (or the documented fallback), never a 500."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.e2e.serverproc import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(shop_repo, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("cfg") / "settings.toml"
    # a loaded CI machine must not turn the functional checks into 504s
    cfg.write_text("[budgets_ms]\nrecommend = 5000\nsearch = 5000\nclassify = 5000\nscore = 5000\n")
    proc = ServerProcess(shop_repo, extra_args=["--config", str(cfg)])
    yield proc
    assert proc.stop() == 0


def post(server, path: str, body: object, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(
        server.base + path, data=data, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_each_endpoint_answers(server, shop_repo):
    ids = json.loads((shop_repo / "recommend" / "1" / "item_ids.json").read_text())
    status, body = post(server, "/v1/recommend", {"history": ids[:3], "k": 5})
    assert status == 200 and len(body["items"]) == 5, body
    status, body = post(server, "/v1/search", {"query": "christmas lights", "k": 3})
    assert status == 200 and len(body["items"]) == 3, body
    status, body = post(
        server, "/v1/classify", {"texts": ["Runs small but lovely"], "task": "recommended"}
    )
    assert status == 200 and body["results"][0]["label"] in ("yes", "no"), body


@pytest.mark.parametrize(
    ("path", "body", "raw", "status", "needle"),
    [
        ("/v1/classify", {"texts": [], "task": "sentiment"}, None, 400, "$.texts"),
        ("/v1/classify", {"texts": ["a"] * 10_000, "task": "sentiment"}, None, 400, "$.texts"),
        ("/v1/classify", {"texts": ["a"], "task": "weather"}, None, 400, "task: 'weather'"),
        ("/v1/search", {"query": "q" * 1_000_000}, None, 400, "$.query"),
        ("/v1/search", {"query": "mug", "k": 0}, None, 400, "$.k"),
        ("/v1/recommend", {"history": [], "k": 10_000}, None, 400, "$.k"),
        ("/v1/recommend", {"history": 5}, None, 400, "$.history"),
        ("/v1/score", {"session": {"Month": "Feb"}}, None, 400, "$.session"),
        ("/v1/score", None, b'{"session": {"BounceRates": NaN}}', 400, "malformed"),
        ("/v1/score", None, b"not json", 400, "malformed"),
    ],
)
def test_bad_input_through_the_real_server(server, path, body, raw, status, needle):
    got, answer = post(server, path, body, raw)
    assert got == status and needle in answer["error"], answer
    assert set(answer) == {"error", "code", "request_id"}


def test_unknown_user_and_items_are_the_documented_fallback(server):
    status, body = post(
        server, "/v1/recommend", {"user_id": "no-such-user", "history": ["NOPE"], "k": 4}
    )
    assert status == 200 and body["ignored_items"] == ["NOPE"] and len(body["items"]) == 4
