"""Errors as gRPC status codes (server/grpc/status.py, the one mapping): the message names the
field, trailing metadata carries the short code, the request id and Retry-After; deadlines are
the request's budget."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest
from prometheus_client import generate_latest
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from server.errors import BadRequest
from tests.server.grpc.conftest import tritonclient_grpc as grpcclient


def _inp(name: str, shape: list[int], datatype: str, x: np.ndarray):
    inp = grpcclient.InferInput(name, shape, datatype)
    inp.set_data_from_numpy(x)
    return inp


def _features(rows: int = 1):
    return [_inp("features", [rows, 64], "FP32", np.ones((rows, 64), np.float32))]


def _fails(call, status: str, *needles: str) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    assert info.value.status() == f"StatusCode.{status}", info.value
    for n in needles:
        assert n in info.value.message(), info.value.message()
    return info.value


def _raw_call(client, request) -> grpc.RpcError:
    """The stub under tritonclient, for what its exception drops (trailing metadata)."""
    with pytest.raises(grpc.RpcError) as info:
        client._client_stub.ModelInfer.with_call(request, metadata=(("x-request-id", "rid-42"),))
    return info.value


def test_unknown_model_and_version_are_not_found(client):
    _fails(lambda: client.infer("nope", _features()), "NOT_FOUND", "unknown model 'nope'")
    _fails(lambda: client.infer("mlp", _features(), model_version="9"), "NOT_FOUND", "version 9")
    _fails(lambda: client.get_model_metadata("nope"), "NOT_FOUND", "nope")
    _fails(lambda: client.get_model_config("nope"), "NOT_FOUND", "nope")
    _fails(lambda: client.get_inference_statistics("nope"), "NOT_FOUND", "nope")


def test_bad_shape_dtype_and_output_name_the_field(client):
    x = np.ones((1, 32), np.float32)
    _fails(lambda: client.infer("mlp", [_inp("features", [1, 32], "FP32", x)]),
           "INVALID_ARGUMENT", "features")  # fmt: skip
    x64 = np.ones((1, 64), np.float64)
    _fails(lambda: client.infer("mlp", [_inp("features", [1, 64], "FP64", x64)]),
           "INVALID_ARGUMENT", "features", "FP64")  # fmt: skip
    _fails(lambda: client.infer("mlp", [_inp("wrong", [1, 64], "FP32", x64.astype("f4"))]),
           "INVALID_ARGUMENT", "wrong")  # fmt: skip
    out = [grpcclient.InferRequestedOutput("nope")]
    _fails(lambda: client.infer("mlp", _features(), outputs=out), "INVALID_ARGUMENT", "nope")
    _fails(lambda: client.infer("mlp", _features(), model_version="x"), "INVALID_ARGUMENT", "'x'")


def test_malformed_tensors_name_the_input(client):
    req = service_pb2.ModelInferRequest(model_name="mlp")
    req.inputs.add(name="features", datatype="FP32", shape=[1, 64])
    req.raw_input_contents.append(b"\0" * 12)
    err = _raw_call(client, req)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs[0] (features)" in err.details() and "256" in err.details()
    trailing = dict(err.trailing_metadata())
    assert trailing["shopserve-error-code"] == BadRequest.code
    assert trailing["x-request-id"] == "rid-42"


def test_request_timeout_parameter_passes_on_the_server(client):
    # the `timeout` parameter (us) shortens the model's deadline: 1 us is gone before it runs
    _fails(lambda: client.infer("mlp", _features(), timeout=1), "DEADLINE_EXCEEDED", "deadline")


def test_grpc_deadline_is_the_request_budget(client, server, monkeypatch):
    """The deadline the engine gets is the call's gRPC deadline (when sooner than the model's
    own 1 s), whatever the model's `allow_timeout_override`: past it, the client has gone."""
    model = server.app.state.repository.get("mlp")
    infer, seen = model.infer, []

    async def spy(inputs, *, deadline_ns, **kw):
        seen.append(deadline_ns - time.monotonic_ns())
        return await infer(inputs, deadline_ns=deadline_ns, **kw)

    monkeypatch.setattr(model, "infer", spy)
    client.infer("mlp", _features(), client_timeout=5.0)  # longer than the model's own 1 s
    client.infer("mlp", _features(), client_timeout=0.3)
    # wide bounds: this 2-core machine is shared, and a trip may take 100 ms under load
    assert 0.3e9 < seen[0] <= 1e9  # the model's default_timeout (1 s): the sooner
    # the call's 0.3 s: gRPC sends it as a timeout that the server counts from the call's
    # arrival, so it may end a little after the client's own clock says
    assert 0 < seen[1] <= 0.31e9


def test_a_short_budget_is_not_held_for_a_batch(client):
    """`slow` waits up to 2 s to fill a batch; a request whose budget is 0.5 s runs within it,
    because the batcher holds a request only while its deadline allows."""
    t0 = time.monotonic()
    try:
        res = client.infer("slow", _features(), timeout=500_000)
    except InferenceServerException as e:  # run late on a very busy machine: answered at 0.5 s
        assert e.status() == "StatusCode.DEADLINE_EXCEEDED", e
    else:
        assert res.as_numpy("score").shape == (1, 1)
    assert time.monotonic() - t0 < 1.5
    # a gRPC deadline over before the call starts: the client's own DEADLINE_EXCEEDED (0.1 ms was
    # not always enough: a batch that now runs inline can be answered inside gRPC's timer slack)
    _fails(lambda: client.infer("slow", _features(), client_timeout=1e-6), "DEADLINE_EXCEEDED")


def test_overloaded_is_unavailable_with_retry_after(client, server, monkeypatch):
    model = server.app.state.repository.get("mlp")
    monkeypatch.setattr(model, "is_overloaded", lambda: True)
    _fails(lambda: client.infer("mlp", _features()), "UNAVAILABLE", "queue is full")
    req = service_pb2.ModelInferRequest(model_name="mlp")
    err = _raw_call(client, req)
    trailing = dict(err.trailing_metadata())
    assert (trailing["retry-after"], trailing["shopserve-error-code"]) == ("1", "overloaded")


def test_draining_refuses_new_work(client, server, monkeypatch):
    monkeypatch.setattr(server.app.state.admission, "draining", True)
    assert not client.is_server_ready()
    _fails(lambda: client.infer("mlp", _features()), "UNAVAILABLE", "shutting down")


def test_unexpected_error_is_internal_with_the_request_id(client, server, monkeypatch):
    model = server.app.state.repository.get("mlp")

    async def boom(*a, **kw):
        raise RuntimeError("kaput")

    monkeypatch.setattr(model, "infer", boom)
    e = _fails(lambda: client.infer("mlp", _features(), headers={"x-request-id": "abc"}),
               "INTERNAL", "RuntimeError", "abc")  # fmt: skip
    assert "kaput" not in e.message()  # the details stay in the log


def test_a_call_the_client_cancels_is_never_run(server):
    """grpc.aio cancels the handler's task, which cancels the queued envelope (as a REST client
    that disconnects): `slow` would have waited 2 s for a batch, and never runs it."""
    import asyncio

    import tritonclient.grpc.aio as aioclient

    slow = server.app.state.repository.get("slow")
    runs = slow.stats.execution_count

    async def main() -> None:
        c = aioclient.InferenceServerClient(server.url)
        inp = aioclient.InferInput("features", [1, 64], "FP32")
        inp.set_data_from_numpy(np.ones((1, 64), np.float32))
        call = asyncio.create_task(c.infer("slow", [inp]))
        await asyncio.sleep(0.3)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.sleep(2.2)  # past the 2 s the batch would have waited
        await c.close()

    asyncio.run(main())
    assert slow.stats.execution_count == runs
    text = generate_latest(server.app.state.metrics.registry).decode()
    assert 'code="client_disconnected",method="ModelInfer",status="CANCELLED"' in text
