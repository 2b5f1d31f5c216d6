"""The fake shop (tests/server/pipelines/shop.py): pipelines over fake models, no torch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.pipelines.shop import Shop, build_shop


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    """A private fake shop a test may break (building one takes milliseconds)."""
    return build_shop(tmp_path)
