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


@pytest.fixture(scope="session")
def shop_repo(tmp_path_factory: pytest.TempPathFactory, demo_repo: Path) -> Path:
    """The demo models plus the quick export of every model the shop endpoints call. Quick models
    are tiny and may miss their quality gates: they are published anyway for serving tests."""
    import os

    prebuilt = os.environ.get("SHOPSERVE_TEST_SHOP_REPO")  # a developer's shortcut: reuse a build
    if prebuilt:
        return Path(prebuilt)
    pytest.importorskip("torch")
    from export.cli import main as export_main

    out = tmp_path_factory.mktemp("shop") / "repo"
    for family in ("risk", "recommender", "text"):
        export_main([family, "--quick", "--allow-regression", "--out", str(out)])
    for model in demo_repo.iterdir():
        shutil.copytree(model, out / model.name)
    return out
