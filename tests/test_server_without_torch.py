"""The serving install has no torch: `tests/server` must pass in a process where `import torch`
fails, with nothing skipped (fake models stand in for trained ones; see
tests/server/pipelines/fakes.py). Lives outside tests/server so that it is not run by itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# imported at interpreter start (site), before pytest or any test module
BLOCKER = '''
import sys


class _NoTorch:
    """Any import of torch (or a submodule) fails, as on a machine without it."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(
                f"{name} is blocked: this run checks the server without torch", name=name
            )
        return None


sys.meta_path.insert(0, _NoTorch())
'''

# a plugin of the inner run: reports, from inside that process, what `import torch` does there
PROBE = """
def pytest_terminal_summary(terminalreporter):
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        terminalreporter.write_line(f"TORCH-PROBE: import failed: {exc}")
    else:
        terminalreporter.write_line("TORCH-PROBE: import worked")
"""

COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def _env(blocker_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(blocker_dir), str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    return env


@pytest.mark.timeout(900)
def test_server_tests_pass_without_torch(tmp_path: Path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    (tmp_path / "torch_probe.py").write_text(PROBE)
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "tests/server", "-q"),
            # the CUDA tests skip on any machine without a GPU, torch or not: they run in
            # bench/gpu_check.sh on a lent device (docs/gpu.md)
            "--ignore=tests/server/runtime/test_gpu.py",
            *("-p", "no:cacheprovider", "-p", "torch_probe"),
        ],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=840,
    )
    out = run.stdout + run.stderr
    assert "TORCH-PROBE: import failed: torch is blocked" in out, out[-3000:]
    summary = [line for line in out.splitlines() if COUNTS.search(line)]
    assert summary, out[-3000:]
    counts = {
        kind.rstrip("s") if kind.startswith("error") else kind: int(n)
        for n, kind in COUNTS.findall(summary[-1])
    }
    assert run.returncode == 0, out[-3000:]
    assert counts.get("passed", 0) > 0, summary[-1]
    for bad in ("failed", "error", "skipped", "xfailed", "xpassed", "deselected"):
        assert counts.get(bad, 0) == 0, f"{summary[-1]}\n{out[-3000:]}"
