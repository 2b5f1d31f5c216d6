"""The pipeline registry: every `pipeline.toml` folder is built at load time; a broken spec or
artifact is reported (state, reason) there, never inside a request; a changed model rebuilds the
pipelines that name it."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest

from server.contract.pipelines import SearchSpec
from server.errors import ModelNotFound, ModelNotReady
from server.pipelines.registry import PipelineRegistry
from tests.server.pipelines.shop import Shop, write_pipeline


def _registry(shop: Shop) -> PipelineRegistry:
    reg = PipelineRegistry(shop.repo, shop.models)
    asyncio.run(reg.load_all())
    return reg


def test_every_pipeline_is_built(shop: Shop):
    reg = _registry(shop)
    assert {n: (e.state, e.kind, e.version) for n, e in reg.entries.items()} == {
        "classify": ("READY", "classify", 1),
        "recommend": ("READY", "recommend", 1),
        "score": ("READY", "score", 1),
        "search": ("READY", "search", 1),
    }
    assert reg.entries["recommend"].models == ["query_encoder", "ranker"]
    assert reg.get("score", "score").versions() == {"risk": "7"}
    assert len(reg.ready()) == 4


def test_lookups_name_what_is_wrong(shop: Shop):
    reg = _registry(shop)
    with pytest.raises(ModelNotFound, match="no pipeline 'nope'"):
        reg.get("nope", "search")
    with pytest.raises(ModelNotReady, match="is a score pipeline, not search"):
        reg.get("score", "search")


@pytest.mark.parametrize(
    ("pipeline", "breakage", "reason"),
    [
        ("search", "truncate", "product_embeddings.npy has shape [49, 16]"),
        ("search", "dotdot", "artifact '../secret.npy' must be a relative name"),
        ("search", "absolute", "$.spec.product_embeddings"),
        ("search", "no_version", "no numeric version folder"),
        ("search", "misnamed", "field `name` is 'finder' but the folder is 'search'"),
        ("search", "unknown_field", "colour"),
        ("search", "no_tokenizer", "search/1/tokenizer.json: cannot read the tokenizer"),
        ("search", "bad_ids", "search/1/item_ids.json: Expecting"),
        ("recommend", "bad_npy", "recommend/1/item_embeddings.npy: "),
        ("recommend", "no_popularity", "recommend/1/popularity.npy: "),
        ("recommend", "bad_user_ids", "ranker/5/user_ids.json: "),
        ("classify", "bad_tokenizer", "classify/1/tokenizer.json: cannot read the tokenizer"),
        ("recommend", "no_encoder", "unknown model 'query_encoder'"),
        ("score", "no_preprocess", "preprocess.json"),
    ],
)
def test_broken_pipelines_are_unavailable_with_a_reason(shop: Shop, pipeline, breakage, reason):
    folder = shop.folder(pipeline)
    toml = shop.repo / pipeline / "pipeline.toml"
    if breakage == "truncate":
        np.save(folder / "product_embeddings.npy", np.zeros((49, 16), np.float32))
    elif breakage == "dotdot":
        np.save(shop.repo / pipeline / "secret.npy", np.zeros((50, 16), np.float32))
        write_pipeline(
            shop.repo,
            pipeline,
            SearchSpec(encoder="search_encoder", product_embeddings="../secret.npy"),
        )
    elif breakage == "absolute":
        toml.write_text(toml.read_text() + 'product_embeddings = "/etc/passwd"\n')
    elif breakage == "no_version":
        shutil.rmtree(folder)
    elif breakage == "misnamed":
        toml.write_text(toml.read_text().replace('name = "search"', 'name = "finder"'))
    elif breakage == "unknown_field":
        toml.write_text(toml.read_text() + "colour = 3\n")
    elif breakage == "no_tokenizer":
        (folder / "tokenizer.json").unlink()
    elif breakage == "bad_ids":
        (folder / "item_ids.json").write_text("{not json")
    elif breakage == "bad_npy":
        (folder / "item_embeddings.npy").write_bytes(b"not an array")
    elif breakage == "no_popularity":
        (folder / "popularity.npy").unlink()
    elif breakage == "bad_user_ids":
        (shop.models["ranker"].folder / "user_ids.json").write_text("[")
    elif breakage == "bad_tokenizer":
        (folder / "tokenizer.json").write_text("{}")
    elif breakage == "no_encoder":
        del shop.models.models["query_encoder"]
    elif breakage == "no_preprocess":
        (shop.models["risk"].folder / "preprocess.json").unlink()
    reg = _registry(shop)
    entry = reg.entries[pipeline]
    assert entry.state == "UNAVAILABLE" and reason in entry.reason, entry.reason
    with pytest.raises(ModelNotReady, match=f"pipeline '{pipeline}' is not ready"):
        reg.get(pipeline, pipeline)
    others = [e.state for n, e in reg.entries.items() if n != pipeline]
    assert others == ["READY"] * 3  # the rest are served


def test_a_changed_model_rebuilds_the_pipelines_that_use_it(shop: Shop):
    reg = _registry(shop)
    old = reg.entries["recommend"]
    ranker = shop.models["ranker"]
    ranker.version = 6
    shutil.copytree(ranker.folder, ranker.folder.parent / "6")
    ranker.folder = ranker.folder.parent / "6"
    asyncio.run(reg.model_changed("ranker"))
    new = reg.entries["recommend"]
    assert new is not old and new.state == "READY"
    assert new.pipeline.versions()["ranker"] == "6"
    assert reg.entries["search"].pipeline.versions()["search_encoder"] == "3"


def test_the_old_pipeline_answers_until_the_new_one_is_ready(shop: Shop):
    reg = _registry(shop)
    del shop.models.models["risk"]
    asyncio.run(reg.model_changed("risk"))  # the rebuild fails: reported, not raised
    assert reg.entries["score"].state == "UNAVAILABLE"
    assert "unknown model 'risk'" in reg.entries["score"].reason
