"""A family's folders land together (`publish_batch`), and a preview is not a full build."""

from __future__ import annotations

import json
from pathlib import Path

from export.repository import PUBLISHING, ModelFolder, is_done, publish_batch


def _model(out: Path, name: str, tier: str) -> ModelFolder:
    folder = ModelFolder(out, name)
    (folder.dir / "config.toml").write_text("")
    folder.write_json("card.json", {"gate": {"passed": True, "rules": [], "tier": tier}})
    (folder.version / "model.onnx").write_bytes(tier.encode())
    return folder


def test_folders_published_in_a_batch_land_together_at_its_end(tmp_path: Path) -> None:
    seen: list[bool] = []
    with publish_batch(tmp_path):
        _model(tmp_path, "a", "full").publish()
        seen.append((tmp_path / "a").exists())
        _model(tmp_path, "b", "full").publish()
    assert seen == [False]
    assert (tmp_path / "a" / "1" / "model.onnx").exists() and (tmp_path / "b").exists()
    assert not (tmp_path / PUBLISHING).exists()


def test_a_republished_folder_replaces_the_old_one_whole(tmp_path: Path) -> None:
    _model(tmp_path, "a", "preview").publish()
    assert is_done(tmp_path, ["a"], "preview") and not is_done(tmp_path, ["a"], "full")
    _model(tmp_path, "a", "full").publish()
    assert (tmp_path / "a" / "1" / "model.onnx").read_bytes() == b"full"
    assert json.loads((tmp_path / "a" / "card.json").read_text())["gate"]["tier"] == "full"
    assert is_done(tmp_path, ["a"], "full")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["a"]
