"""The in-process app over the demo repository, shared by the V2 tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.settings import Settings


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
