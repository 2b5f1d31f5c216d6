"""Every kind of bad input to the V2 API gets a 4xx naming the field, and the requests around
it are unaffected."""

from __future__ import annotations

import struct

import pytest

from server.errors import Overloaded
from tests.server.http.helpers import (
    assert_error,
    binary_body,
    binary_input,
    infer_body,
    mlp_request,
    tensor,
)

MLP = "/v2/models/mlp/infer"
SIMPLE = "/v2/models/simple/infer"
ROW = mlp_request(1)["inputs"][0]  # a valid mlp input


def _features(datatype: str = "FP32", data: list | None = None, **extra) -> dict:
    """The mlp's one input, a row of 64."""
    return tensor("features", [1, 64], datatype, data, **extra)


def _simple(shape: list[int], data: list) -> bytes:
    """Both inputs of `simple`, the same values in each."""
    return infer_body(*(tensor(n, shape, "INT64", data) for n in ("INPUT0", "INPUT1")))


@pytest.mark.parametrize(
    ("path", "body", "status", "needles"),
    [
        (MLP, b"{not json", 400, ["request body"]),
        ("/v2/models/nope/infer", b"{}", 404, ["nope"]),
        ("/v2/models/mlp/versions/7/infer", b"{}", 404, ["version 7"]),
        ("/v2/models/mlp/versions/x/infer", b"{}", 400, ["model_version"]),
        (MLP, infer_body(), 400, ["$.inputs"]),
        (MLP, infer_body(_features()), 400, ["features", "data"]),
        (MLP, infer_body(_features(data=[1] * 64, colour=1)), 400, ["colour"]),
        (
            SIMPLE,
            infer_body(tensor("INPUT0", [1, 16], "INT64", [1] * 16)),
            400,
            ["missing", "INPUT1"],
        ),
        (
            MLP,
            infer_body(ROW, tensor("extra", [1], "FP32", [1])),
            400,
            ["unexpected", "extra"],
        ),
        (MLP, infer_body(_features("INT64", [1] * 64)), 400, ["features", "INT64", "FP32"]),
        (MLP, infer_body(_features(data=[1] * 63)), 400, ["features", "63"]),
        (MLP, infer_body(_features(data=["a"] * 64)), 400, ["features"]),
        (MLP, infer_body(_features("FLOAT", [1] * 64)), 400, ["datatype", "FLOAT"]),
        (SIMPLE, _simple([1, 16], [0.5] * 16), 400, ["INPUT0", "non-integer"]),
        (SIMPLE, _simple([65, 16], [1] * 1040), 400, ["max_batch_size"]),
        (MLP, infer_body(ROW, outputs=[{"name": "nope"}]), 400, ["outputs", "nope"]),
        (MLP, infer_body(ROW, parameters={"timeout": -5}), 400, ["parameters.timeout"]),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client, path, body, status, needles):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert_error(r, status, *needles)
    assert client.post("/v2/models/mlp/infer", json=mlp_request()).status_code == 200  # unaffected


def test_binary_header_that_lies(client):
    header = {"inputs": [binary_input("features", [1, 64], "FP32", 256)]}
    body, headers = binary_body(header, [b"\0" * 100])
    assert_error(
        client.post("/v2/models/mlp/infer", content=body, headers=headers),
        400,
        "binary_data_size",
        "run past",
    )
    body, headers = binary_body(header, [b"\0" * 256])
    assert_error(
        client.post(
            "/v2/models/mlp/infer",
            content=body,
            headers={"Inference-Header-Content-Length": "99999"},
        ),
        400,
        "Inference-Header-Content-Length",
    )
    header["inputs"][0]["parameters"]["binary_data_size"] = 252
    body, headers = binary_body(header, [b"\0" * 256])
    assert_error(client.post("/v2/models/mlp/infer", content=body, headers=headers), 400, "252")
    bytes_header = {"inputs": [binary_input("text", [1, 1], "BYTES", 8)]}
    body, headers = binary_body(bytes_header, [struct.pack("<I", 50) + b"abcd"])
    assert_error(
        client.post("/v2/models/identity_bytes/infer", content=body, headers=headers),
        400,
        "BYTES element 0",
    )


def test_body_over_limit_is_413(client):
    r = client.post(
        "/v2/models/mlp/infer",
        content=b"x" * (300 * 1024),
        headers={"content-type": "application/json"},
    )
    assert_error(r, 413, "max_body_bytes")


def test_deadline_passed_is_504_and_timeout_header_is_checked(client):
    req = {**mlp_request(1), "parameters": {"timeout": 1}}  # 1 us: spent before it can run
    assert_error(client.post("/v2/models/mlp/infer", json=req), 504, "deadline")
    req = {**mlp_request(1), "parameters": {"timeout": 0}}  # 0: no override, as in Triton
    assert client.post("/v2/models/mlp/infer", json=req).status_code == 200
    for bad in ("0", "0.5", "soon", "inf", "nan", "-3"):  # the same rule as /v1: >= 1 ms
        r = client.post(
            "/v2/models/mlp/infer", json=mlp_request(1), headers={"X-Request-Timeout-Ms": bad}
        )
        assert_error(r, 400, "X-Request-Timeout-Ms")
    assert (
        client.post(
            "/v2/models/mlp/infer", json=mlp_request(1), headers={"X-Request-Timeout-Ms": "5000"}
        ).status_code
        == 200
    )


def test_overloaded_is_429_with_retry_after(client, monkeypatch):
    model = client.app.state.repository.get("mlp")

    def full(env):
        raise Overloaded("model 'mlp' queue is full (4096 requests)")

    monkeypatch.setattr(model.batcher, "submit", full)
    r = client.post("/v2/models/mlp/infer", json=mlp_request(1))
    assert_error(r, 429, "queue is full")
    assert r.headers["retry-after"] == "1"


def test_request_id_is_echoed(client):
    r = client.post("/v2/models/nope/infer", content=b"{}", headers={"X-Request-Id": "abc123"})
    assert r.json()["request_id"] == "abc123" and r.headers["x-request-id"] == "abc123"
