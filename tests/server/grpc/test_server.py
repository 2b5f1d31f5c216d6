"""The gRPC server's life in the app's lifespan: on only when asked, never sharing a port (a
second server on a taken port fails its start), stopped with the app."""

from __future__ import annotations

from traceback import format_exception

import grpc
import numpy as np
import pytest
from litestar.testing import TestClient
from tritonclient.utils import InferenceServerException

from server.app import create_app
from server.settings import Settings, load_settings
from tests.server.grpc.conftest import serve
from tests.server.grpc.conftest import tritonclient_grpc as grpcclient


def test_default_port_is_tritons_and_zero_turns_it_off(demo_repo):
    assert Settings().grpc_port == 8001
    assert load_settings(environ={"SHOPSERVE_GRPC_PORT": "0"}).grpc_port == 0
    app = create_app(Settings(model_repository=str(demo_repo), device="cpu", grpc_port=0),
                     serve_grpc=True)  # fmt: skip
    with TestClient(app):
        assert app.state.grpc is None
    # in-process apps that do not ask for gRPC never bind (tests would share 8001)
    assert create_app(Settings(model_repository=str(demo_repo), device="cpu")).state.grpc is None


def test_a_taken_port_fails_the_start_instead_of_being_shared(demo_repo):
    for first in serve(demo_repo):
        port = int(first.url.rsplit(":", 1)[1])
        second = create_app(
            Settings(model_repository=str(demo_repo), device="cpu", grpc_port=port),
            serve_grpc=True,
        )
        # anyio's portal wraps the start's error in a group
        with pytest.raises(BaseException) as info, TestClient(second):
            pass
        assert f"cannot listen on 127.0.0.1:{port}" in "".join(format_exception(info.value))
        c = grpcclient.InferenceServerClient(first.url)
        assert c.is_server_live()  # the first server still owns it
        c.close()


def test_stopped_with_the_app(demo_repo):
    for server in serve(demo_repo):
        url = server.url
        channel = grpc.insecure_channel(url)
        grpc.channel_ready_future(channel).result(timeout=10)
        channel.close()
    channel = grpc.insecure_channel(url)
    with pytest.raises(grpc.FutureTimeoutError):
        grpc.channel_ready_future(channel).result(timeout=0.5)
    channel.close()


def test_the_protos_own_service_name_answers_too(demo_repo):
    """For tools that read shopserve_inference.proto (grpcurl -proto, generated stubs)."""
    from server.grpc import shopserve_inference_pb2 as pb

    for server in serve(demo_repo):
        with grpc.insecure_channel(server.url) as channel:
            for service in ("inference", "shopserve.inference"):
                call = channel.unary_unary(
                    f"/{service}.GRPCInferenceService/ModelReady",
                    request_serializer=pb.ModelReadyRequest.SerializeToString,
                    response_deserializer=pb.ModelReadyResponse.FromString,
                )
                assert call(pb.ModelReadyRequest(name="mlp"), timeout=10).ready


def test_a_message_over_max_body_bytes_is_refused(demo_repo):
    for server in serve(demo_repo, max_body_bytes=64 * 1024):
        c = grpcclient.InferenceServerClient(server.url)
        inp = grpcclient.InferInput("features", [512, 64], "FP32")  # 128 KiB
        inp.set_data_from_numpy(np.ones((512, 64), np.float32))
        with pytest.raises(InferenceServerException) as info:
            c.infer("mlp", [inp])
        assert info.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        c.close()
