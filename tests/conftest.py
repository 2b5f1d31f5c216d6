from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The onnx.helper demo repository, built once per session."""
    from export.demo import build_demo_repository

    return build_demo_repository(tmp_path_factory.mktemp("demo") / "repo")


@pytest.fixture
def repo_copy(demo_repo: Path, tmp_path: Path) -> Path:
    """A private copy a test may break."""
    dst = tmp_path / "repo"
    shutil.copytree(demo_repo, dst)
    return dst
