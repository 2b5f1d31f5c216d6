"""Broken models are reported (file, field, reason) and do not stop the others."""

import asyncio
from pathlib import Path

from server.engine.repository import ModelRepository


def _load(root: Path) -> tuple[ModelRepository, list[dict]]:
    repo = ModelRepository(root, device_setting="cpu")

    async def main():
        await repo.load_all()
        index = repo.index()
        await repo.close()
        return index

    return repo, asyncio.run(main())


def test_broken_models_are_reported_and_others_serve(repo_copy: Path):
    (repo_copy / "simple" / "config.toml").write_text(
        (repo_copy / "simple" / "config.toml")
        .read_text()
        .replace("max_batch_size = 64", 'max_batch_size = "many"')
    )
    (repo_copy / "bagofwords" / "1" / "model.onnx").write_bytes(b"not an onnx file")
    (repo_copy / "nocfg").mkdir()
    (repo_copy / "misnamed").mkdir()
    (repo_copy / "misnamed" / "config.toml").write_text(
        (repo_copy / "mlp" / "config.toml").read_text()
    )
    wrongtype = repo_copy / "mlp_unbatched" / "config.toml"
    wrongtype.write_text(
        wrongtype.read_text().replace('data_type = "TYPE_FP32"', 'data_type = "TYPE_INT64"', 1)
    )
    _, rows = _load(repo_copy)
    index = {r["name"]: r for r in rows}
    assert index["mlp"]["state"] == "READY"
    assert index["identity_bytes"]["state"] == "READY"
    assert (
        "$.max_batch_size" in index["simple"]["reason"]
        and "config.toml" in index["simple"]["reason"]
    )
    assert "model.onnx" in index["bagofwords"]["reason"]
    assert "missing config.toml" in index["nocfg"]["reason"]
    assert "folder is 'misnamed'" in index["misnamed"]["reason"]
    assert (
        "TYPE_INT64" in index["mlp_unbatched"]["reason"]
        and "features" in index["mlp_unbatched"]["reason"]
    )


def test_version_policy_picks_latest(repo_copy: Path):
    import shutil

    shutil.copytree(repo_copy / "mlp" / "1", repo_copy / "mlp" / "3")
    repo, _ = _load(repo_copy)
    assert sorted(repo.entries["mlp"].versions) == [3]
