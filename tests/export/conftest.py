"""One quick export of every family, shared by the export tests (it trains: about 2-3 minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def quick_repo(tmp_path_factory) -> Path:
    from export.cli import main

    out = tmp_path_factory.mktemp("quick_repo")
    # quick models are tiny and trained for seconds: their quality gates are recorded, not expected
    # to pass, so the build publishes with --allow-regression (the gate itself is tested separately)
    rc = main(["all", "--quick", "--allow-regression", "--seed", "0", "--out", str(out)])
    assert rc == 0
    return out
