"""deploy/serving_lock.py: the images install only the serving part of requirements.lock, and
that part holds everything `shopserve serve` imports (checked against the installed packages'
own metadata) and nothing of the export, load-test or dev stacks."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LOCK = (ROOT / "requirements.lock").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

_spec = importlib.util.spec_from_file_location("serving_lock", ROOT / "deploy" / "serving_lock.py")
assert _spec and _spec.loader
serving_lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(serving_lock)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure() -> set[str]:
    """[project].dependencies and what they require (no extras), from installed metadata."""
    todo = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonical(req.name)
        if name in seen:
            continue
        seen.add(name)
        todo += [Requirement(r) for r in metadata.requires(name) or []]
    return seen


def test_subset_holds_the_serving_closure() -> None:
    names = serving_lock.serving_names(LOCK, PYPROJECT)
    assert runtime_closure() <= names
    assert "setuptools" in names  # the image builds the project with --no-build-isolation


@pytest.mark.parametrize(
    "name", ["torch", "transformers", "onnx", "pandas", "locust", "pytest", "ruff", "mypy"]
)
def test_subset_leaves_out_the_other_stacks(name: str) -> None:
    assert name in serving_lock.lock_blocks(LOCK)  # it is in the lock ...
    assert name not in serving_lock.serving_names(LOCK, PYPROJECT)  # ... not in the image


def test_subset_keeps_pins_and_hashes() -> None:
    text = serving_lock.serving_lock(LOCK, PYPROJECT)
    blocks = serving_lock.lock_blocks(text)
    assert blocks.keys() == serving_lock.serving_names(LOCK, PYPROJECT)
    for name, (block, _) in blocks.items():
        first = block.splitlines()[0]  # `name==version [; marker] \`
        assert canonical(first.split("==")[0]) == name and first.endswith("\\"), first
        assert "--hash=sha256:" in block, name
        assert block in LOCK


def test_a_root_missing_from_the_lock_fails() -> None:
    lock = re.sub(r"(?ms)^litestar==.*?(?=^\S)", "", LOCK)
    with pytest.raises(SystemExit, match="litestar"):
        serving_lock.serving_names(lock, PYPROJECT)
