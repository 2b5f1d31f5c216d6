"""The real server as a subprocess on a free loopback port, driven by Triton's own Python
client (`tritonclient.http`): metadata, FP32/INT64/BYTES in JSON and binary, errors."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.e2e.serverproc import ServerProcess

pytestmark = pytest.mark.slow


TOKEN = "e2e-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(demo_repo):
    env = {
        "SHOPSERVE_MODEL_CONTROL_MODE": "explicit",
        "SHOPSERVE_LOAD_MODELS": "*",
        "SHOPSERVE_ADMIN_TOKEN": TOKEN,
    }
    proc = ServerProcess(demo_repo, env=env)
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(server.url, concurrency=4)
    yield c
    c.close()


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert "binary_tensor_data" in meta["extensions"]
    assert client.is_model_ready("mlp")
    m = client.get_model_metadata("simple")
    assert [i["name"] for i in m["inputs"]] == ["INPUT0", "INPUT1"]
    cfg = client.get_model_config("mlp")
    assert cfg["max_batch_size"] == 1024
    index = client.get_model_repository_index()
    assert any(r["name"] == "mlp" and r["state"] == "READY" for r in index)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
@pytest.mark.parametrize("binary", [False, True])
def test_compressed_requests(client, algorithm, binary):
    """`request_compression_algorithm` as Triton accepts it (its header length counts the
    decompressed bytes); before, shopserve read the compressed bytes as the body: 400."""
    x = np.random.default_rng(2).standard_normal((3, 64)).astype(np.float32)
    inp = httpclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    plain = client.infer("mlp", [inp]).as_numpy("score")
    for answer in ("gzip", None):
        res = client.infer(
            "mlp",
            [inp],
            request_compression_algorithm=algorithm,
            response_compression_algorithm=answer,
        )
        np.testing.assert_array_equal(res.as_numpy("score"), plain)


@pytest.mark.parametrize("binary", [False, True])
def test_infer_fp32(client, binary, demo_repo):
    x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    inp = httpclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("score", binary_data=binary)
    res = client.infer("mlp", [inp], outputs=[out])
    score = res.as_numpy("score")
    assert score.shape == (4, 1) and score.dtype == np.float32
    import onnxruntime as ort

    sess = ort.InferenceSession(
        str(demo_repo / "mlp/1/model.onnx"), providers=["CPUExecutionProvider"]
    )
    np.testing.assert_allclose(score, sess.run(None, {"features": x})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("binary", [False, True])
def test_infer_int64(client, binary):
    a = np.arange(32, dtype=np.int64).reshape(2, 16)
    b = np.full((2, 16), 3, dtype=np.int64)
    inputs = [
        httpclient.InferInput("INPUT0", [2, 16], "INT64"),
        httpclient.InferInput("INPUT1", [2, 16], "INT64"),
    ]
    inputs[0].set_data_from_numpy(a, binary_data=binary)
    inputs[1].set_data_from_numpy(b, binary_data=binary)
    outputs = [
        httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("OUTPUT0", "OUTPUT1")
    ]
    res = client.infer("simple", inputs, outputs=outputs)
    np.testing.assert_array_equal(res.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(res.as_numpy("OUTPUT1"), a - b)


@pytest.mark.parametrize("binary", [False, True])
def test_infer_bytes(client, binary):
    text = np.array([["bonjour"], ["çava ✓"]], dtype=object)
    inp = httpclient.InferInput("text", [2, 1], "BYTES")
    inp.set_data_from_numpy(text, binary_data=binary)
    res = client.infer(
        "identity_bytes",
        [inp],
        outputs=[httpclient.InferRequestedOutput("echo", binary_data=binary)],
    )
    got = [v.decode() if isinstance(v, bytes) else v for v in res.as_numpy("echo").ravel()]
    assert got == ["bonjour", "çava ✓"]


def test_errors_reach_the_client(client):
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("nope")
    assert "nope" in str(info.value)
    bad = httpclient.InferInput("features", [1, 32], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 32), np.float32))
    with pytest.raises(InferenceServerException) as info:
        client.infer("mlp", [bad])
    assert "features" in str(info.value) and "shape" in str(info.value)


def test_async_requests_are_batched(client):
    x = np.ones((1, 64), np.float32)
    reqs = []
    for _ in range(32):
        inp = httpclient.InferInput("features", [1, 64], "FP32")
        inp.set_data_from_numpy(x)
        reqs.append(client.async_infer("mlp", [inp]))
    scores = [r.get_result().as_numpy("score") for r in reqs]
    assert all(np.array_equal(s, scores[0]) for s in scores)
    stats = client.get_inference_statistics("mlp")["model_stats"][0]
    assert stats["inference_count"] >= 32


def test_load_unload_through_repository_api(client):
    with pytest.raises(InferenceServerException, match="Bearer"):
        client.unload_model("bagofwords")  # no token: 401
    with pytest.raises(InferenceServerException, match="not valid"):
        client.unload_model("bagofwords", headers={"Authorization": "Bearer wrong"})
    assert client.is_model_ready("bagofwords")
    client.unload_model("bagofwords", headers=ADMIN)
    assert not client.is_model_ready("bagofwords")
    client.load_model("bagofwords", headers=ADMIN)
    assert client.is_model_ready("bagofwords")
