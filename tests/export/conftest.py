"""The export tests share `quick_repo` (tests/conftest.py): one `export all --quick` per session,
used by the serving tests too, so the suite trains the quick models once."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
