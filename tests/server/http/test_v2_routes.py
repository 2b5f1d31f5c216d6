"""The V2 API in-process (Litestar's TestClient): every endpoint answers as Triton's does."""

from __future__ import annotations

import json
import struct

import numpy as np

from tests.server.http.helpers import assert_error, binary_body, binary_input, mlp_request


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
        "inputs": [binary_input(n, [1, 16], "INT64", 128) for n in ("INPUT0", "INPUT1")],
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
        "inputs": [binary_input("text", [2, 1], "BYTES", len(blob))],
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
