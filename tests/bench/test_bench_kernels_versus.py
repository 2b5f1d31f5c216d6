"""`bench.kernels_versus` loads a git revision's kernels beside this tree's and compares them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench import kernels_versus

ROOT = Path(__file__).resolve().parents[2]


def _in_git() -> bool:
    if shutil.which("git") is None:
        return False
    r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _in_git(), reason="needs the git checkout")
def test_head_against_the_tree_prints_every_case(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(ROOT)
    rc = kernels_versus.main(["HEAD", "--items", "2000", "--rounds", "1", "--calls", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("| ") and " ms |" in ln]
    assert [r.split(" | ")[0][2:] for r in rows] == list(kernels_versus._cases())


def test_an_unknown_revision_fails() -> None:
    with pytest.raises(subprocess.CalledProcessError):
        kernels_versus.main(["no-such-revision-xyz", "--items", "2000", "--rounds", "1"])
