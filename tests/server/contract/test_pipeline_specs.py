"""`pipeline.toml`: one tagged spec per kind, written by `encode_pipeline_spec` and decoded with
every bad field named; artifact names stay inside their version folder."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from server.contract.pipelines import (
    ClassifyHead,
    ClassifySpec,
    RankingSpec,
    RecommendSpec,
    ScorePreprocessing,
    ScoreSpec,
    SearchSpec,
    artifact_path,
    decode_pipeline_spec,
    encode_pipeline_spec,
    load_pipeline_spec,
)

SPECS = [
    SearchSpec(encoder="search_encoder", max_tokens=32),
    RecommendSpec(
        query_encoder="query_encoder",
        max_history=20,
        ranking=RankingSpec(model="ranker", candidates=50),
    ),
    RecommendSpec(query_encoder="query_encoder"),
    ClassifySpec(
        heads=[
            ClassifyHead(task="sentiment", model="classify_sentiment", labels=["neg", "pos"]),
            ClassifyHead(task="department", model="classify_department", labels=["a", "b", "c"]),
        ]
    ),
    ScoreSpec(model="risk", threshold=0.37),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: type(s).__name__)
def test_specs_round_trip(spec, tmp_path: Path):
    text = encode_pipeline_spec("p", spec)
    assert decode_pipeline_spec(text) == ("p", spec)
    (tmp_path / "pipeline.toml").write_bytes(text)
    assert load_pipeline_spec(tmp_path / "pipeline.toml") == ("p", spec)


def test_defaults_are_omitted_and_kind_tags_the_spec():
    text = encode_pipeline_spec("search", SearchSpec(encoder="enc")).decode()
    assert text.split() == ["name", "=", '"search"', "[spec]", "kind", "=", '"search"'] + [
        "encoder",
        "=",
        '"enc"',
    ]
    _, spec = decode_pipeline_spec(text)
    assert spec.product_embeddings == "product_embeddings.npy" and spec.max_tokens == 64
    assert spec.catalog.item_ids == "item_ids.json"


def test_models_each_spec_names():
    assert [s.models for s in SPECS] == [
        ["search_encoder"],
        ["query_encoder", "ranker"],
        ["query_encoder"],
        ["classify_sentiment", "classify_department"],
        ["risk"],
    ]


GOOD = """
name = "search"
[spec]
kind = "search"
encoder = "search_encoder"
"""


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (GOOD + "colour = 3\n", "colour"),
        (GOOD.replace('kind = "search"', 'kind = "teleport"'), "teleport"),
        (GOOD.replace('kind = "search"\n', ""), "kind"),
        (GOOD.replace('encoder = "search_encoder"', "encoder = 3"), "$.spec.encoder"),
        (GOOD.replace('encoder = "search_encoder"', 'encoder = "a b"'), "$.spec.encoder"),
        (GOOD + 'product_embeddings = "/etc/passwd"\n', "$.spec.product_embeddings"),
        (GOOD + 'tokenizer = "C:\\\\tok.json"\n', "$.spec.tokenizer"),
        (GOOD + 'tokenizer = ""\n', "$.spec.tokenizer"),
        (GOOD + "max_tokens = 0\n", "$.spec.max_tokens"),
        (GOOD + "[spec.catalog]\nitem_ids = 5\n", "$.spec.catalog.item_ids"),
        ('name = "x"\n', "spec"),
        ("name = [", ""),
    ],
)
def test_bad_fields_are_named(text, needle):
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)) as info:
        decode_pipeline_spec(text)
    assert needle in str(info.value)


def test_recommend_and_score_limits_are_named():
    rec = 'name = "r"\n[spec]\nkind = "recommend"\nquery_encoder = "q"\n'
    with pytest.raises(msgspec.ValidationError, match=r"\$.spec.ranking.candidates"):
        decode_pipeline_spec(rec + '[spec.ranking]\nmodel = "ranker"\ncandidates = 0\n')
    with pytest.raises(msgspec.ValidationError, match=r"\$.spec.threshold"):
        decode_pipeline_spec('name = "s"\n[spec]\nkind = "score"\nmodel = "risk"\nthreshold = 2\n')


def test_classify_heads_are_checked():
    head = '[[spec.heads]]\ntask = "{t}"\nmodel = "m"\nlabels = {labels}\n'
    base = 'name = "c"\n[spec]\nkind = "classify"\n'
    with pytest.raises(msgspec.ValidationError, match="duplicate classify tasks"):
        decode_pipeline_spec(
            base + head.format(t="a", labels='["x", "y"]') + head.format(t="a", labels='["x", "y"]')
        )
    with pytest.raises(msgspec.ValidationError, match=r"\$.spec.heads\[0\].labels"):
        decode_pipeline_spec(base + head.format(t="a", labels='["x"]'))
    with pytest.raises(msgspec.ValidationError, match=r"\$.spec.heads\[0\].task"):
        decode_pipeline_spec(base + head.format(t="Not A Task", labels='["x", "y"]'))
    with pytest.raises(msgspec.ValidationError, match=r"\$.spec.heads"):
        decode_pipeline_spec(base + "heads = []\n")


# -- artifact_path ----------------------------------------------------------------------------------


def test_artifact_path_accepts_names_inside_the_folder(tmp_path: Path):
    folder = tmp_path / "search" / "1"
    folder.mkdir(parents=True)
    assert artifact_path(folder, "item_ids.json") == (folder / "item_ids.json").resolve()
    assert artifact_path(folder, "sub/dir/x.npy") == (folder / "sub/dir/x.npy").resolve()
    assert artifact_path(folder, "a..b.npy").name == "a..b.npy"  # dots inside a name are fine


@pytest.mark.parametrize(
    "name", ["../x.npy", "sub/../../x.npy", "..", "/etc/passwd", "\\\\server\\share", "/"]
)
def test_artifact_path_refuses_names_that_leave_the_folder(tmp_path: Path, name):
    with pytest.raises(ValueError, match="must be a relative name"):
        artifact_path(tmp_path, name)


def test_artifact_path_refuses_a_link_out_of_the_folder(tmp_path: Path):
    folder = tmp_path / "search" / "1"
    folder.mkdir(parents=True)
    (tmp_path / "secret.npy").write_bytes(b"")
    os.symlink(tmp_path / "secret.npy", folder / "link.npy")
    with pytest.raises(ValueError, match="resolves outside 1/"):
        artifact_path(folder, "link.npy")


# -- preprocess.json ---------------------------------------------------------------------------------

PRE = {
    "numeric": ["a", "b"],
    "log1p": ["a"],
    "mean": [0.0, 1.0],
    "std": [1.0, 2.0],
    "categorical": ["c"],
    "vocab": {"c": ["<unk>", "x"]},
    "bias": -0.5,
    "contributions": ["a", "b", "c"],
}


def test_score_preprocessing_round_trips():
    pre = msgspec.json.decode(msgspec.json.encode(PRE), type=ScorePreprocessing)
    assert msgspec.to_builtins(pre) == PRE


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"mean": [0.0]}, "numeric, mean and std differ in length"),
        ({"log1p": ["z"]}, "log1p names non-numeric columns ['z']"),
        ({"vocab": {}}, "vocab lacks categorical column(s) ['c']"),
        ({"contributions": ["a"]}, "contributions must name every"),
        ({"bias": "high"}, "$.bias"),
        ({"extra": 1}, "extra"),
    ],
)
def test_score_preprocessing_is_checked(change, needle):
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(msgspec.json.encode({**PRE, **change}), type=ScorePreprocessing)
    assert needle in str(info.value)
