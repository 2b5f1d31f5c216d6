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
def quick_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`shopserve export all --quick`, once per session: every family, tiny and trained for
    seconds. Quick models' quality gates are recorded, not expected to pass, so the build
    publishes with --allow-regression (the gate itself is tested in tests/export)."""
    import os

    prebuilt = os.environ.get("SHOPSERVE_TEST_QUICK_REPO")  # a developer's shortcut: reuse a build
    if prebuilt:
        return Path(prebuilt)
    pytest.importorskip("torch")
    from export.cli import main as export_main

    out = tmp_path_factory.mktemp("quick_repo")
    rc = export_main(["all", "--quick", "--allow-regression", "--seed", "0", "--out", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def shop_repo(tmp_path_factory: pytest.TempPathFactory, quick_repo: Path, demo_repo: Path) -> Path:
    """The quick export plus the demo models, in a folder of its own (tests may load/unload)."""
    out = tmp_path_factory.mktemp("shop") / "repo"
    shutil.copytree(quick_repo, out, ignore=shutil.ignore_patterns(".staging", ".export-cache"))
    for model in demo_repo.iterdir():
        if not (out / model.name).exists():
            shutil.copytree(model, out / model.name)
    return out
