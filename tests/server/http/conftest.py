"""The in-process app over the demo repository, shared by the V2 tests, and a real server with
short slow-client limits (test_body_timeout.py, test_header_timeout.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.settings import Settings
from tests.e2e.serverproc import ServerProcess

BODY_TIMEOUT_S = 4  # above the header tests' slow body (2.5 s), which must not be cut
HEADER_TIMEOUT_S = 1


@pytest.fixture(scope="module")
def client(demo_repo: Path):
    app = create_app(
        Settings(
            model_repository=str(demo_repo),
            device="cpu",
            max_body_bytes=256 * 1024,
            model_control_mode="explicit",
            load_models=["*"],
        )
    )
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def timeouts_server(demo_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """`shopserve serve` over the demo repository with `body_timeout_s` and `header_timeout_s`
    short enough to test."""
    cfg = tmp_path_factory.mktemp("cfg") / "settings.toml"
    cfg.write_text(f"body_timeout_s = {BODY_TIMEOUT_S}\nheader_timeout_s = {HEADER_TIMEOUT_S}\n")
    proc = ServerProcess(demo_repo, extra_args=["--config", str(cfg)])
    yield proc
    assert proc.stop() == 0
