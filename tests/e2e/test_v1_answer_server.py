"""POST /v1/answer through the real server (`shopserve serve` as a subprocess on a free loopback
port) over the answer folders of `shopserve export all --quick`: answers from the knowledge base,
the intent, confidence and hand-off, `k` respected, and bad bodies as a 4xx naming the field,
never a 500. The quick models are barely trained, so the checks are of shape and contract, not of
quality (the card judges that)."""

from __future__ import annotations

import http.client
import json
import shutil
import urllib.error
import urllib.request

import pytest

from server.contract.pipelines import AnswerSpec, load_pipeline_spec
from tests.e2e.serverproc import ServerProcess

pytestmark = pytest.mark.slow

FOLDERS = ("answer", "answer_encoder")  # the pipeline and its model: nothing else to load
MAX_BODY = 2 * 1024 * 1024
QUESTIONS = [  # a demo entry's own question, and a two-sentence one in the customer's words
    "How can I track my order?",
    "I ordered a jumper last week and it still hasn't come. Where is my parcel?",
]


@pytest.fixture(scope="module")
def answer_repo(quick_repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("answer_e2e") / "repo"
    for name in FOLDERS:
        shutil.copytree(quick_repo / name, out / name)
    return out


@pytest.fixture(scope="module")
def server(answer_repo, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("cfg") / "settings.toml"
    # a loaded CI machine must not turn the checks into 504s; bodies over 2 MiB are refused
    cfg.write_text(f"max_body_bytes = {MAX_BODY}\n[budgets_ms]\nanswer = 5000\n")
    proc = ServerProcess(answer_repo, extra_args=["--config", str(cfg)])
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def kb(answer_repo) -> tuple[AnswerSpec, dict[str, dict]]:
    _, spec = load_pipeline_spec(answer_repo / "answer" / "pipeline.toml")
    assert isinstance(spec, AnswerSpec)
    rows = json.loads((answer_repo / "answer" / "1" / spec.entries).read_text())
    return spec, {r["id"]: r for r in rows}


def post(server, body: object, raw: bytes | None = None) -> tuple[int, dict, dict]:
    """(status, JSON body, headers with lower-case names) of one POST /v1/answer."""
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(
        server.base + "/v1/answer", data=data, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read()), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), {k.lower(): v for k, v in e.headers.items()}


def test_the_pipeline_is_ready(server):
    with urllib.request.urlopen(server.base + "/v1/pipelines", timeout=30) as r:
        rows = {p["name"]: p for p in json.loads(r.read())["pipelines"]}
    assert rows["answer"]["state"] == "READY" and rows["answer"]["kind"] == "answer", rows
    assert [m["name"] for m in rows["answer"]["models"]] == ["answer_encoder"]


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_a_question_gets_answers_from_the_knowledge_base(server, kb, question, k):
    spec, entries = kb
    status, body, headers = post(server, {"question": question, "k": k})
    assert status == 200, body
    assert set(body) == {"answers", "intent", "confidence", "handoff", "model_versions", "warnings"}
    assert len(body["answers"]) == k  # the demo knowledge base has far more than 5 entries
    for a in body["answers"]:
        assert set(a) == {"faq_id", "question", "answer", "score"}
        entry = entries[a["faq_id"]]
        assert (a["question"], a["answer"]) == (entry["question"], entry["answer"])
        assert isinstance(a["score"], float)
    scores = [a["score"] for a in body["answers"]]
    assert scores == sorted(scores, reverse=True)
    assert len({a["faq_id"] for a in body["answers"]}) == k
    assert body["intent"] in spec.intents and 0 < body["confidence"] <= 1
    assert isinstance(body["handoff"], bool)
    assert body["model_versions"] == {"answer": "1", "answer_encoder": "1"}
    assert "encode;dur=" in headers["server-timing"] and headers["x-request-id"]


def test_the_default_k_is_3(server):
    status, body, _ = post(server, {"question": QUESTIONS[0]})
    assert status == 200 and len(body["answers"]) == 3, body


def test_a_repeated_question_gets_the_same_answer(server):
    first = post(server, {"question": QUESTIONS[1], "k": 4})[1]
    again = post(server, {"question": QUESTIONS[1], "k": 4})[1]
    assert first == again


@pytest.mark.parametrize(
    ("body", "raw", "needle"),
    [
        ({"question": ""}, None, "$.question"),
        ({"question": "q" * 1_000_000}, None, "$.question"),
        ({"question": 7}, None, "$.question"),
        ({"question": ["where is my order"]}, None, "$.question"),
        ({"k": 3}, None, "question"),
        ({"question": "where is my order", "k": 0}, None, "$.k"),
        ({"question": "where is my order", "k": 21}, None, "$.k"),
        ({"question": "where is my order", "k": "3"}, None, "$.k"),
        ({"question": "where is my order", "budget_ms": 0}, None, "$.budget_ms"),
        ({"question": "where is my order", "colour": "red"}, None, "colour"),
        (None, b'{"question": "where is my order", "k": NaN}', "malformed"),
        (None, b"not json", "malformed"),
        ([], None, "request body"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(server, body, raw, needle):
    status, answer, _ = post(server, body, raw)
    assert status == 400 and needle in answer["error"], answer
    assert set(answer) == {"error", "code", "request_id"}


def test_a_body_over_the_limit_is_413_before_it_is_read(server):
    """Refused on its Content-Length: the server answers before the client sends the body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest("POST", "/v1/answer")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(MAX_BODY + 1))
        conn.endheaders()
        r = conn.getresponse()
        status, answer = r.status, json.loads(r.read())
    finally:
        conn.close()
    assert status == 413 and answer["code"], answer
    assert set(answer) == {"error", "code", "request_id"}


def test_a_tiny_budget_is_an_answer_or_a_504_never_a_500(server):
    status, body, _ = post(server, {"question": QUESTIONS[1], "budget_ms": 1})
    assert status in (200, 504), body
    if status == 504:
        assert body["code"] == "deadline_exceeded"
