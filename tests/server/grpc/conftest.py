"""The app in-process (Litestar's TestClient runs its lifespan, which serves gRPC on a free
loopback port) over a private copy of the demo repository, and Triton's own gRPC client."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from loadtests.serve import free_port
from server.app import create_app
from server.contract.model_config import DynamicBatching, ModelWarmup, QueuePolicy
from server.settings import Settings
from tests.configs import mlp_config, toml

tritonclient_grpc = pytest.importorskip("tritonclient.grpc")

TOKEN = "grpc-admin-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}  # gRPC metadata keys are lower case

# the MLP waiting up to 2 s for a batch, so that a request can be made to sit in its queue
SLOW = toml(
    mlp_config(
        "slow",
        8,
        dynamic_batching=DynamicBatching(
            max_queue_delay_microseconds=2_000_000,
            default_queue_policy=QueuePolicy(default_timeout_microseconds=10_000_000),
        ),
        model_warmup=ModelWarmup(batch_sizes=[1]),
    )
)


@dataclass
class GrpcApp:
    http: TestClient
    url: str

    @property
    def app(self) -> Litestar:
        return self.http.app  # type: ignore[return-value]


def serve(repo: Path, **settings) -> Iterator[GrpcApp]:
    port = free_port()
    app = create_app(
        Settings(model_repository=str(repo), device="cpu", grpc_port=port, **settings),
        serve_grpc=True,
    )
    with TestClient(app) as http:
        yield GrpcApp(http, f"127.0.0.1:{port}")


@pytest.fixture(scope="module")
def grpc_repo(tmp_path_factory: pytest.TempPathFactory, demo_repo: Path) -> Path:
    """The demo models plus `slow`, in a folder this module may load and unload from."""
    repo = tmp_path_factory.mktemp("grpc") / "repo"
    shutil.copytree(demo_repo, repo)
    shutil.copytree(repo / "mlp", repo / "slow")
    (repo / "slow" / "config.toml").write_text(SLOW)
    return repo


@pytest.fixture(scope="module")
def server(grpc_repo: Path) -> Iterator[GrpcApp]:
    """Explicit model control behind an admin token, as the REST tests of the same rules."""
    yield from serve(grpc_repo, model_control_mode="explicit", load_models=["*"], admin_token=TOKEN)


@pytest.fixture(scope="module")
def client(server: GrpcApp):
    c = tritonclient_grpc.InferenceServerClient(server.url)
    yield c
    c.close()
