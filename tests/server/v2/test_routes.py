"""The V2 API in-process (Litestar's TestClient): every endpoint, and every kind of bad input
gets a 4xx naming the field while the requests around it are unaffected."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.errors import Overloaded
from server.settings import Settings


@pytest.fixture(scope="module")
def client(demo_repo: Path):
    app = create_app(
        Settings(model_repository=str(demo_repo), device="cpu", max_body_bytes=256 * 1024)
    )
    with TestClient(app) as c:
        yield c


def mlp_request(rows: int = 2, value: float = 0.5) -> dict:
    return {
        "inputs": [
            {
                "name": "features",
                "shape": [rows, 64],
                "datatype": "FP32",
                "data": [value] * (64 * rows),
            }
        ]
    }


def binary_body(header: dict, blobs: list[bytes]) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}


def assert_error(r, status: int, *needles: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "code", "request_id"}
    for n in needles:
        assert n in body["error"], body["error"]
    return body


def test_server_metadata_and_health(client):
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2").json()
    assert meta["name"] == "shopserve"
    assert set(meta["extensions"]) >= {
        "binary_tensor_data",
        "model_repository",
        "statistics",
        "model_configuration",
    }


def test_model_metadata_config_ready(client):
    meta = client.get("/v2/models/mlp").json()
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 64]}]
    assert client.get("/v2/models/mlp/versions/1").json()["versions"] == ["1"]
    assert client.get("/v2/models/mlp/ready").status_code == 200
    assert client.get("/v2/models/mlp/versions/1/ready").status_code == 200
    cfg = client.get("/v2/models/mlp/config").json()
    assert cfg["max_batch_size"] == 1024 and cfg["input"][0]["dims"] == [64]
    assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 500


def test_infer_json_fp32_matches_onnxruntime(client, demo_repo):
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    req = {
        "inputs": [{"name": "features", "shape": [3, 64], "datatype": "FP32", "data": x.tolist()}]
    }
    r = client.post("/v2/models/mlp/infer", json=req)
    assert r.status_code == 200, r.text
    assert "queue;dur=" in r.headers["server-timing"] and "infer;dur=" in r.headers["server-timing"]
    out = r.json()["outputs"][0]
    sess = ort.InferenceSession(
        str(demo_repo / "mlp/1/model.onnx"), providers=["CPUExecutionProvider"]
    )
    want = sess.run(None, {"features": x})[0]
    assert out["shape"] == [3, 1]
    np.testing.assert_allclose(np.array(out["data"]).reshape(3, 1), want, rtol=1e-5, atol=1e-6)


def test_infer_binary_roundtrip_int64_and_bytes(client):
    a = np.arange(16, dtype=np.int64).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.int64)
    header = {
        "inputs": [
            {
                "name": "INPUT0",
                "shape": [1, 16],
                "datatype": "INT64",
                "parameters": {"binary_data_size": 128},
            },
            {
                "name": "INPUT1",
                "shape": [1, 16],
                "datatype": "INT64",
                "parameters": {"binary_data_size": 128},
            },
        ],
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}, {"name": "OUTPUT1"}],
    }
    body, headers = binary_body(header, [a.tobytes(), b.tobytes()])
    r = client.post("/v2/models/simple/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    head = json.loads(r.content[:n])
    out0, out1 = head["outputs"]
    assert out0["parameters"]["binary_data_size"] == 128
    assert np.frombuffer(r.content[n:], dtype=np.int64).tolist() == (a + b).ravel().tolist()
    assert out1["data"] == (a - b).ravel().tolist()

    words = [b"caf\xc3\xa9", b""]
    blob = b"".join(struct.pack("<I", len(w)) + w for w in words)
    header = {
        "inputs": [
            {
                "name": "text",
                "shape": [2, 1],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(blob)},
            }
        ],
        "parameters": {"binary_data_output": True},
    }
    body, headers = binary_body(header, [blob])
    r = client.post("/v2/models/identity_bytes/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    assert r.content[n:] == blob


def test_variable_length_inputs_are_padded(client):
    r1 = client.post(
        "/v2/models/bagofwords/infer",
        json={
            "inputs": [{"name": "input_ids", "shape": [1, 2], "datatype": "INT64", "data": [5, 6]}]
        },
    )
    r2 = client.post(
        "/v2/models/bagofwords/infer",
        json={
            "inputs": [
                {"name": "input_ids", "shape": [1, 4], "datatype": "INT64", "data": [5, 6, 0, 0]}
            ]
        },
    )
    assert r1.status_code == r2.status_code == 200
    np.testing.assert_allclose(
        r1.json()["outputs"][0]["data"], r2.json()["outputs"][0]["data"], rtol=1e-6
    )


@pytest.mark.parametrize(
    ("path", "body", "status", "needles"),
    [
        ("/v2/models/mlp/infer", b"{not json", 400, ["request body"]),
        ("/v2/models/nope/infer", b"{}", 404, ["nope"]),
        ("/v2/models/mlp/versions/7/infer", b"{}", 404, ["version 7"]),
        ("/v2/models/mlp/versions/x/infer", b"{}", 400, ["model_version"]),
        ("/v2/models/mlp/infer", json.dumps({"inputs": []}).encode(), 400, ["$.inputs"]),
        (
            "/v2/models/mlp/infer",
            json.dumps(
                {"inputs": [{"name": "features", "shape": [1, 64], "datatype": "FP32"}]}
            ).encode(),
            400,
            ["features", "data"],
        ),
        (
            "/v2/models/mlp/infer",
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "features",
                            "shape": [1, 64],
                            "datatype": "FP32",
                            "data": [1] * 64,
                            "colour": 1,
                        }
                    ]
                }
            ).encode(),
            400,
            ["colour"],
        ),
        (
            "/v2/models/simple/infer",
            json.dumps(
                {
                    "inputs": [
                        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT64", "data": [1] * 16}
                    ]
                }
            ).encode(),
            400,
            ["missing", "INPUT1"],
        ),
        (
            "/v2/models/mlp/infer",
            json.dumps(
                {
                    "inputs": [
                        mlp_request(1)["inputs"][0],
                        {"name": "extra", "shape": [1], "datatype": "FP32", "data": [1]},
                    ]
                }
            ).encode(),
            400,
            ["unexpected", "extra"],
        ),
        (
            "/v2/models/mlp/infer",
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "features",
                            "shape": [1, 64],
                            "datatype": "INT64",
                            "data": [1] * 64,
                        }
                    ]
                }
            ).encode(),
            400,
            ["features", "INT64", "FP32"],
        ),
        (
            "/v2/models/mlp/infer",
            json.dumps(
                {
                    "inputs": [
                        {"name": "features", "shape": [1, 64], "datatype": "FP32", "data": [1] * 63}
                    ]
                }
            ).encode(),
            400,
            ["features", "63"],
        ),
        (
            "/v2/models/mlp/infer",
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "features",
                            "shape": [1, 64],
                            "datatype": "FP32",
                            "data": ["a"] * 64,
                        }
                    ]
                }
            ).encode(),
            400,
            ["features"],
        ),
        (
            "/v2/models/mlp/infer",
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "features",
                            "shape": [1, 64],
                            "datatype": "FLOAT",
                            "data": [1] * 64,
                        }
                    ]
                }
            ).encode(),
            400,
            ["datatype", "FLOAT"],
        ),
        (
            "/v2/models/simple/infer",
            json.dumps(
                {
                    "inputs": [
                        {"name": n, "shape": [1, 16], "datatype": "INT64", "data": [0.5] * 16}
                        for n in ("INPUT0", "INPUT1")
                    ]
                }
            ).encode(),
            400,
            ["INPUT0", "non-integer"],
        ),
        (
            "/v2/models/simple/infer",
            json.dumps(
                {
                    "inputs": [
                        {"name": n, "shape": [65, 16], "datatype": "INT64", "data": [1] * 1040}
                        for n in ("INPUT0", "INPUT1")
                    ]
                }
            ).encode(),
            400,
            ["max_batch_size"],
        ),
        (
            "/v2/models/mlp/infer",
            json.dumps({**mlp_request(1), "outputs": [{"name": "nope"}]}).encode(),
            400,
            ["outputs", "nope"],
        ),
        (
            "/v2/models/mlp/infer",
            json.dumps({**mlp_request(1), "parameters": {"timeout": -5}}).encode(),
            400,
            ["parameters.timeout"],
        ),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client, path, body, status, needles):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert_error(r, status, *needles)
    assert client.post("/v2/models/mlp/infer", json=mlp_request()).status_code == 200  # unaffected


def test_binary_header_that_lies(client):
    header = {
        "inputs": [
            {
                "name": "features",
                "shape": [1, 64],
                "datatype": "FP32",
                "parameters": {"binary_data_size": 256},
            }
        ]
    }
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
    bytes_header = {
        "inputs": [
            {
                "name": "text",
                "shape": [1, 1],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": 8},
            }
        ]
    }
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
    req = {**mlp_request(1), "parameters": {"timeout": 0}}
    assert_error(client.post("/v2/models/mlp/infer", json=req), 504, "deadline")
    r = client.post(
        "/v2/models/mlp/infer", json=mlp_request(1), headers={"X-Request-Timeout-Ms": "0"}
    )
    assert_error(r, 504)
    r = client.post(
        "/v2/models/mlp/infer", json=mlp_request(1), headers={"X-Request-Timeout-Ms": "soon"}
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


def test_repository_index_unload_load_and_stats(client):
    rows = client.post("/v2/repository/index").json()
    assert {"name": "mlp", "version": "1", "state": "READY", "reason": ""} in rows
    assert client.post("/v2/repository/models/simple/unload").status_code == 200
    assert_error(client.post("/v2/models/simple/infer", json={"inputs": []}), 503, "simple")
    assert client.get("/v2/models/simple/ready").status_code == 503
    assert (
        client.post("/v2/repository/index", json={"ready": True})
        .json()
        .count({"name": "simple", "version": "1", "state": "READY", "reason": ""})
        == 0
    )
    assert client.post("/v2/repository/models/simple/load").status_code == 200
    assert client.get("/v2/models/simple/ready").status_code == 200
    assert_error(client.post("/v2/repository/models/nope/load"), 404, "nope")
    client.post("/v2/models/mlp/infer", json=mlp_request(2))
    stats = client.get("/v2/models/mlp/stats").json()["model_stats"][0]
    assert stats["name"] == "mlp" and stats["inference_count"] >= 2
    assert stats["inference_stats"]["success"]["count"] >= 1
    assert {"batch_size", "compute_infer"} <= set(stats["batch_stats"][0])
    assert client.get("/v2/models/stats").status_code == 200
    metrics = client.get("/metrics").text
    assert 'shopserve_inference_request_success_total{model="mlp",version="1"}' in metrics
    assert "shopserve_batch_size_bucket" in metrics


def test_unknown_route_and_method_use_the_error_body(client):
    assert_error(client.get("/v2/nothing/here"), 404)
    assert_error(client.get("/v2/models/mlp/infer"), 405)
