"""`make serve`'s promise (issue 10 item 7): the server answers on preview models first and
reaches the full tier without a restart. The full build publishes each family's folders together
(`publish_batch`, under `.publishing`); the server in `poll` mode picks them up; no request fails
during the swaps, and once they are done no answer says "preview model"."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from export.repository import ModelFolder, publish_batch
from tests.e2e.serverproc import ServerProcess
from tests.server.pipelines.shop import SESSION

pytestmark = pytest.mark.slow

IGNORED = shutil.ignore_patterns(".staging", ".export-cache", ".publishing")


def _set_tier(folder: Path, tier: str) -> None:
    """The card's tier; and a long queue timeout: a failure here must be a swap's, not the busy
    test machine's."""
    config = folder / "config.toml"
    if config.exists():
        text = re.sub(
            r"default_timeout_microseconds = \d+",
            "default_timeout_microseconds = 30000000",
            config.read_text(),
        )
        config.write_text(text)
    card = folder / "card.json"
    if card.exists():
        body = json.loads(card.read_text())
        body["gate"]["tier"] = tier
        card.write_text(json.dumps(body))


def _bodies(repo: Path) -> dict[str, dict]:
    ids = msgspec.json.decode((repo / "recommend" / "1" / "item_ids.json").read_bytes())
    budget = {"budget_ms": 30_000}
    return {
        "score": {"session": SESSION, **budget},
        "classify": {"texts": ["lovely soft jumper, runs small"], "task": "sentiment", **budget},
        "search": {"query": "heart candle holder", "k": 5, **budget},
        "recommend": {"history": ids[:3], "k": 5, **budget},
    }


class _Load(threading.Thread):
    """Every /v1 endpoint in turn until stopped: each answer's status and warnings."""

    def __init__(self, base: str, bodies: dict[str, dict]) -> None:
        super().__init__(daemon=True)
        self.base, self.bodies = base, bodies
        self.stop = threading.Event()
        self.answers: list[tuple[str, int, list[str]]] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                for endpoint, body in self.bodies.items():
                    r = client.post(f"/v1/{endpoint}", json=body)
                    warnings = r.json().get("warnings", []) if r.status_code == 200 else [r.text]
                    self.answers.append((endpoint, r.status_code, warnings))


def _previews(answers: list[tuple[str, int, list[str]]]) -> int:
    return sum(any("preview model" in w for w in ws) for _, _, ws in answers)


def test_the_full_tier_replaces_the_preview_with_no_failed_request(quick_repo, tmp_path):
    serving = tmp_path / "repo"
    shutil.copytree(quick_repo, serving, ignore=IGNORED)
    for folder in serving.iterdir():
        _set_tier(folder, "preview")
    config = (
        tmp_path / "settings.toml"
    )  # generous budgets: a failure is a swap's, not a busy machine's
    config.write_text(
        'model_control_mode = "poll"\nrepository_poll_secs = 0.3\n[budgets_ms]\n'
        + "".join(f"{e} = 30000\n" for e in ("score", "classify", "search", "recommend"))
    )
    server = ServerProcess(serving, extra_args=["--config", str(config)])
    load = _Load(server.base, _bodies(serving))
    try:
        load.start()
        time.sleep(2)
        assert _previews(load.answers) > 0
        with publish_batch(serving):  # what the background full build does, family by family
            for src in sorted(p for p in quick_repo.iterdir() if not p.name.startswith(".")):
                folder = ModelFolder(serving, src.name)
                shutil.copytree(src, folder.dir, dirs_exist_ok=True, ignore=IGNORED)
                _set_tier(folder.dir, "full")
                folder.publish()
        seen = len(load.answers)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(1)
            recent = load.answers[seen:]
            if len(recent) >= 8 and _previews(recent[-8:]) == 0:
                break
        load.stop.set()
        load.join(30)
    finally:
        server.stop()
    failed = [(e, s, w) for e, s, w in load.answers if s != 200]
    assert not failed, failed[:5]
    assert _previews(load.answers[-8:]) == 0, "the full tier never replaced the preview"
    assert {e for e, _, _ in load.answers} == {"score", "classify", "search", "recommend"}
