"""Triton's repository extension over gRPC: the index, and load / unload behind the same admin
token and model control mode as REST (server/http/admin.py)."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from tests.server.grpc.conftest import ADMIN, serve
from tests.server.grpc.conftest import tritonclient_grpc as grpcclient


def _status(call) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value.status(), info.value.message()


def test_index_lists_every_model_and_filters_ready(client):
    rows = client.get_model_repository_index(as_json=True)["models"]
    assert {"name": "mlp", "version": "1", "state": "READY"} in rows
    # tritonclient has no `ready` argument: the stub under it
    ready = client._client_stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(ready=True))
    assert ready.models and all(m.state == "READY" for m in ready.models)
    assert len(ready.models) == sum(r.get("state") == "READY" for r in rows)


def test_unload_and_load_need_the_admin_token(client):
    assert _status(lambda: client.unload_model("simple"))[0] == "StatusCode.UNAUTHENTICATED"
    wrong = {"authorization": "Bearer nope"}
    status, msg = _status(lambda: client.unload_model("simple", headers=wrong))
    assert status == "StatusCode.PERMISSION_DENIED" and "not valid" in msg
    basic = {"authorization": "Basic grpc-admin-token"}
    assert _status(lambda: client.load_model("simple", headers=basic))[0] == (
        "StatusCode.UNAUTHENTICATED"
    )
    assert client.is_model_ready("simple")

    client.unload_model("simple", headers=ADMIN)
    assert not client.is_model_ready("simple")
    x = np.zeros((1, 16), np.int64)
    inputs = [grpcclient.InferInput(n, [1, 16], "INT64") for n in ("INPUT0", "INPUT1")]
    for i in inputs:
        i.set_data_from_numpy(x)
    status, msg = _status(lambda: client.infer("simple", inputs))
    assert status == "StatusCode.UNAVAILABLE" and "simple" in msg

    client.load_model("simple", headers=ADMIN)
    assert client.is_model_ready("simple")
    assert client.infer("simple", inputs).as_numpy("OUTPUT0").shape == (1, 16)


def test_load_errors(client, grpc_repo):
    status, msg = _status(lambda: client.load_model("nowhere", headers=ADMIN))
    assert status == "StatusCode.NOT_FOUND" and "nowhere" in msg
    (grpc_repo / "broken").mkdir()
    (grpc_repo / "broken" / "config.toml").write_text('name = "broken"\nmax_batch_size = "x"\n')
    status, msg = _status(lambda: client.load_model("broken", headers=ADMIN))
    assert status == "StatusCode.INVALID_ARGUMENT" and "max_batch_size" in msg


@pytest.mark.parametrize("mode", ["none", "poll"])
def test_model_control_is_refused_outside_explicit_mode(demo_repo, mode):
    for server in serve(demo_repo, model_control_mode=mode):
        c = grpcclient.InferenceServerClient(server.url)
        try:
            status, msg = _status(lambda: c.unload_model("simple", headers=ADMIN))  # noqa: B023
            assert status == "StatusCode.PERMISSION_DENIED" and mode in msg
            assert c.is_model_ready("simple")
        finally:
            c.close()
