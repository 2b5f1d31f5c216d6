"""ModelInfer through Triton's gRPC client: raw tensors (what tritonclient sends), typed
`contents` (what KServe clients may send), BYTES, requested outputs, versions, async calls."""

from __future__ import annotations

import asyncio
import queue

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from tests.server.grpc.conftest import tritonclient_grpc as grpcclient


def _features(rows: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 64)).astype(np.float32)


def _mlp_inputs(x: np.ndarray) -> list:
    inp = grpcclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return [inp]


@pytest.fixture(scope="module")
def reference(demo_repo):
    import onnxruntime as ort

    sess = ort.InferenceSession(
        str(demo_repo / "mlp/1/model.onnx"), providers=["CPUExecutionProvider"]
    )
    return lambda x: sess.run(None, {"features": x})[0]


def test_raw_fp32_matches_onnxruntime(client, reference):
    x = _features()
    res = client.infer("mlp", _mlp_inputs(x), request_id="req-1")
    score = res.as_numpy("score")
    assert score.shape == (3, 1) and score.dtype == np.float32
    np.testing.assert_allclose(score, reference(x), rtol=1e-5, atol=1e-6)
    r = res.get_response()
    assert (r.model_name, r.model_version, r.id) == ("mlp", "1", "req-1")
    assert len(r.raw_output_contents) == 1  # raw in, raw out (as Triton)


def test_raw_int64_two_outputs_and_the_one_asked_for(client):
    a = np.arange(32, dtype=np.int64).reshape(2, 16)
    b = np.full((2, 16), 3, dtype=np.int64)
    inputs = [grpcclient.InferInput(n, [2, 16], "INT64") for n in ("INPUT0", "INPUT1")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    res = client.infer("simple", inputs)
    np.testing.assert_array_equal(res.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(res.as_numpy("OUTPUT1"), a - b)
    only = client.infer("simple", inputs, outputs=[grpcclient.InferRequestedOutput("OUTPUT1")])
    assert [o.name for o in only.get_response().outputs] == ["OUTPUT1"]
    np.testing.assert_array_equal(only.as_numpy("OUTPUT1"), a - b)


def test_raw_bytes_roundtrip(client):
    words = np.array([[b"caf\xc3\xa9"], [b""], [b"shop"]], dtype=object)
    inp = grpcclient.InferInput("text", [3, 1], "BYTES")
    inp.set_data_from_numpy(words)
    out = client.infer("identity_bytes", [inp]).as_numpy("echo")
    assert out.shape == (3, 1) and out.ravel().tolist() == words.ravel().tolist()


def test_typed_contents_in_and_out(client, reference):
    """A request with typed `contents` (no raw_input_contents) is answered with typed contents,
    unless it asks for raw outputs; both decode to the same numbers."""
    x = _features(2, seed=5)
    req = service_pb2.ModelInferRequest(model_name="mlp", id="typed")
    t = req.inputs.add(name="features", datatype="FP32", shape=[2, 64])
    t.contents.fp32_contents.extend(x.ravel().tolist())
    stub = client._client_stub
    r = stub.ModelInfer(req)
    assert not r.raw_output_contents and list(r.outputs[0].shape) == [2, 1]
    typed = np.array(r.outputs[0].contents.fp32_contents, np.float32).reshape(2, 1)
    np.testing.assert_allclose(typed, reference(x), rtol=1e-5, atol=1e-6)
    req.parameters["binary_data_output"].bool_param = True
    raw = stub.ModelInfer(req)
    np.testing.assert_array_equal(np.frombuffer(raw.raw_output_contents[0], "<f4"), typed.ravel())


@pytest.mark.parametrize(
    ("datatype", "field", "values", "model"),
    [("INT64", "int64_contents", list(range(16)), "simple")],
)
def test_typed_int64(client, datatype, field, values, model):
    req = service_pb2.ModelInferRequest(model_name=model)
    for name in ("INPUT0", "INPUT1"):
        t = req.inputs.add(name=name, datatype=datatype, shape=[1, 16])
        getattr(t.contents, field).extend(values)
    r = client._client_stub.ModelInfer(req)
    by_name = {o.name: list(o.contents.int64_contents) for o in r.outputs}
    assert by_name == {"OUTPUT0": [2 * v for v in values], "OUTPUT1": [0] * 16}


def test_typed_bytes(client):
    req = service_pb2.ModelInferRequest(model_name="identity_bytes")
    t = req.inputs.add(name="text", datatype="BYTES", shape=[2, 1])
    t.contents.bytes_contents.extend([b"a", b"bc"])
    r = client._client_stub.ModelInfer(req)
    assert list(r.outputs[0].contents.bytes_contents) == [b"a", b"bc"]


def test_version_and_padding_of_variable_length_inputs(client):
    ids = np.array([[5, 9, 0, 0]], dtype=np.int64)
    inp = grpcclient.InferInput("input_ids", [1, 4], "INT64")
    inp.set_data_from_numpy(ids)
    res = client.infer("bagofwords", [inp], model_version="1")
    assert res.as_numpy("logits").shape == (1, 3)
    assert res.get_response().model_version == "1"


def test_async_infer_with_callback(client, reference):
    x = _features(1, seed=3)
    done: queue.Queue = queue.Queue()
    for _ in range(8):
        client.async_infer("mlp", _mlp_inputs(x), lambda result, error: done.put((result, error)))
    for _ in range(8):
        result, error = done.get(timeout=30)
        assert error is None, error
        np.testing.assert_allclose(result.as_numpy("score"), reference(x), rtol=1e-5, atol=1e-6)


def test_aio_client_concurrent_requests_are_batched(server, reference):
    import tritonclient.grpc.aio as aioclient

    x = _features(1, seed=4)
    stats0 = server.app.state.repository.get("mlp").stats.execution_count

    async def main() -> list[np.ndarray]:
        c = aioclient.InferenceServerClient(server.url)
        inp = aioclient.InferInput("features", [1, 64], "FP32")
        inp.set_data_from_numpy(x)
        try:
            results = await asyncio.gather(*(c.infer("mlp", [inp]) for _ in range(32)))
        finally:
            await c.close()
        return [r.as_numpy("score") for r in results]

    scores = asyncio.run(main())
    assert len(scores) == 32
    for s in scores:
        np.testing.assert_allclose(s, reference(x), rtol=1e-5, atol=1e-6)
    runs = server.app.state.repository.get("mlp").stats.execution_count - stats0
    assert 1 <= runs <= 32  # the same batcher as REST: usually far fewer runs than requests
