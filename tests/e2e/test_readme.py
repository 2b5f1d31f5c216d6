"""The README's curl examples, run against a server on the quick repository (quick export + demo)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.serverproc import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]

README = Path(__file__).resolve().parents[2] / "README.md"


def _examples() -> list[tuple[str, str | None]]:
    """(bash block, the json block right after it or None)."""
    text = README.read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", text, re.S)
    out = []
    for i, (lang, body) in enumerate(blocks):
        if lang == "bash" and "curl" in body:
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            out.append((body, following[1] if following and following[0] == "json" else None))
    return out


def test_readme_has_curl_examples():
    assert len(_examples()) >= 5


# the README's explicit-mode example (load/unload with a token)
EXPLICIT = {
    "SHOPSERVE_MODEL_CONTROL_MODE": "explicit",
    "SHOPSERVE_LOAD_MODELS": "*",
    "SHOPSERVE_ADMIN_TOKEN": "s3cret",
}


def test_readme_curl_examples_work(shop_repo):
    server = ServerProcess(shop_repo, env=EXPLICIT)
    try:
        for block, expected in _examples():
            commands: list[str] = []
            for line in re.sub(r"\\\n\s*", " ", block).strip().splitlines():
                if line.startswith("curl") or not commands:
                    commands.append(line)
                else:  # a quoted body that goes on over several lines
                    commands[-1] += " " + line.strip()
            for cmd in commands:
                cmd = cmd.replace("127.0.0.1:8000", server.url)
                run = subprocess.run(
                    ["bash", "-c", cmd + " -w '\\n%{http_code}'"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                assert run.returncode == 0, (cmd, run.stderr)
                body, status = run.stdout.rsplit("\n", 1)
                if expected is not None:
                    want = json.loads(expected)
                    got = json.loads(body.split("\r\n\r\n")[-1])
                    if "request_id" in want:
                        want.pop("request_id"), got.pop("request_id")
                        assert status.startswith("4"), cmd
                    else:
                        assert status == "200", (cmd, body)
                    assert got == want, cmd
                else:
                    assert status == "200", (cmd, body)
    finally:
        assert server.stop() == 0
