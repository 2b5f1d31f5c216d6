"""`shopserve bench flame` profiles only paths that answer: the classify head is one the
repository serves, and a path answering an error stops the command naming it (a profile of 404s
once passed for the MLP's and classify's)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.flame import _body, _classify_task
from tests.e2e.serverproc import ServerProcess


@pytest.fixture(scope="module")
def no_sentiment(shop_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shop repository without its sentiment head, as a full build whose head failed its
    gate writes it: no model folder, no head in the classify pipeline."""
    out = tmp_path_factory.mktemp("flame") / "repo"
    shutil.copytree(shop_repo, out, ignore=shutil.ignore_patterns("classify_sentiment"))
    spec = out / "classify" / "pipeline.toml"
    head, *heads = spec.read_text().split("[[spec.heads]]")
    kept = [h for h in heads if 'task = "sentiment"' not in h]
    assert len(kept) == len(heads) - 1
    spec.write_text("[[spec.heads]]".join([head, *kept]))
    return out


def test_classify_profiles_a_served_head(shop_repo: Path, no_sentiment: Path):
    for repo, want in ((shop_repo, {"sentiment"}), (no_sentiment, {"recommended", "department"})):
        server = ServerProcess(repo)
        try:
            assert _classify_task(server.port) in want
            path, body = _body(server.port, "classify")
            assert path == "/v1/classify" and body["task"] in want and len(body["texts"]) == 4
        finally:
            assert server.stop() == 0


def test_a_path_that_does_not_answer_stops_the_command(demo_repo: Path):
    server = ServerProcess(demo_repo)  # the demo models: MLP yes, no shop pipelines
    try:
        assert _body(server.port, "v2-mlp")[0] == "/v2/models/mlp/infer"
        with pytest.raises(SystemExit, match=r"score \(/v1/score\) answered 404"):
            _body(server.port, "score")
    finally:
        assert server.stop() == 0
