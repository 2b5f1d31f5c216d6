"""The text family: its ONNX specs, the `classify/` and `search/` pipeline folders, the gate
failures kept until the end, and the quick build's text models and pipelines."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from export.card import GateError
from export.options import ExportOptions
from export.text_classify import CLASSIFY, classifier_spec, write_classify_pipeline
from export.text_data import INPUT_IDS, MAX_TOKENS, TASKS
from export.text_onnx import TextRun, teacher_spec
from export.text_search import SEARCH_ENCODER, write_search_pipeline
from server.contract.model_config import decode_config, encode_config, load_config
from server.contract.pipelines import (
    ClassifyHead,
    ClassifySpec,
    SearchSpec,
    artifact_path,
    load_pipeline_spec,
)

HEADS = ["classify_sentiment", "classify_recommended", "classify_department"]


def test_classifier_spec_is_named_and_sized_per_task():
    spec = classifier_spec("department", 6)
    config = decode_config(encode_config(spec.config({"variant": "student"})))
    assert config.name == "classify_department"
    assert [t.dims for t in config.output] == [[6]]
    assert config.parameters == {"variant": "student"}
    assert spec.input_names == CLASSIFY.input_names == [INPUT_IDS.name]
    assert spec.dynamic_axes() == {
        "input_ids": {0: "batch", 1: "input_ids_0"},
        "logits": {0: "batch"},
    }


def test_search_encoder_and_teacher_specs():
    config = decode_config(encode_config(SEARCH_ENCODER.config()))
    assert config.input[0].pad_value == 0 and config.input[0].dims == [-1]
    assert config.output[0].name == "embedding" and config.model_warmup.dynamic_dim == 16
    teacher = teacher_spec({"sentiment": TASKS["sentiment"], "recommended": ["no", "yes"]})
    assert teacher.output_names == ["embedding", "sentiment_logits", "recommended_logits"]
    assert [t.dims for t in teacher.outputs] == [(384,), (3,), (2,)]


def test_classify_pipeline_folder(tmp_path: Path):
    run = SimpleNamespace(opts=ExportOptions(out=tmp_path), tokenizer='{"model": {}}')
    heads = [ClassifyHead(task="sentiment", model="classify_sentiment", labels=TASKS["sentiment"])]
    write_classify_pipeline(run, heads)
    name, spec = load_pipeline_spec(tmp_path / "classify" / "pipeline.toml")
    assert name == "classify" and isinstance(spec, ClassifySpec)
    assert spec.heads == heads and spec.max_tokens == MAX_TOKENS
    assert artifact_path(tmp_path / "classify" / "1", spec.tokenizer).read_text() == run.tokenizer


def test_search_pipeline_folder_matches_the_embeddings_row_for_row(tmp_path: Path):
    run = SimpleNamespace(opts=ExportOptions(out=tmp_path), tokenizer="{}")
    emb = np.eye(5, 384, dtype=np.float64)
    write_search_pipeline(run, emb)
    name, spec = load_pipeline_spec(tmp_path / "search" / "pipeline.toml")
    assert name == "search" and isinstance(spec, SearchSpec)
    assert spec.encoder == "search_encoder" and spec.max_tokens == MAX_TOKENS
    v = tmp_path / "search" / "1"
    got = np.load(v / spec.product_embeddings)
    assert got.dtype == np.float32 and got.shape == (5, 384)
    assert len(json.loads((v / spec.catalog.item_ids).read_text())) == 5
    assert len(json.loads((v / spec.catalog.item_titles).read_text())) == 5
    assert np.load(v / spec.catalog.item_prices).shape == (5,)


def test_publishing_failures_are_kept_and_raised_together(tmp_path: Path):
    run = TextRun(ExportOptions(out=tmp_path), *[None] * 5, tmp_path, "{}", {})

    def fail(msg: str):
        raise GateError(msg)

    assert not run.attempt(fail, "classify_department: gate failed")
    assert run.attempt(lambda: None)
    assert not run.attempt(fail, "search_encoder: gate failed")
    with pytest.raises(GateError, match="classify_department.*\nsearch_encoder"):
        run.raise_failures()


@pytest.mark.timeout(1200)
def test_quick_classify_pipeline_names_published_heads(quick_repo: Path):
    _, spec = load_pipeline_spec(quick_repo / "classify" / "pipeline.toml")
    assert isinstance(spec, ClassifySpec)
    assert [h.model for h in spec.heads] == HEADS
    for head in spec.heads:
        folder = quick_repo / head.model
        config = load_config(folder / "config.toml")
        assert [t.dims for t in config.output] == [[len(head.labels)]]
        assert sorted(p.name for p in (folder / "1").iterdir()) == ["model.onnx"]
    assert (quick_repo / "classify" / "1" / spec.tokenizer).is_file()


@pytest.mark.timeout(1200)
def test_quick_search_pipeline(quick_repo: Path):
    from export import onnx_tools

    _, spec = load_pipeline_spec(quick_repo / "search" / "pipeline.toml")
    assert isinstance(spec, SearchSpec)
    v = quick_repo / "search" / "1"
    emb = np.load(v / spec.product_embeddings)
    assert len(json.loads((v / spec.catalog.item_ids).read_text())) == emb.shape[0]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-2)
    encoder = quick_repo / spec.encoder
    assert load_config(encoder / "config.toml").output[0].dims == [emb.shape[1]]
    sess = onnx_tools.session(encoder / "1" / "model.onnx")
    out = sess.run(None, {INPUT_IDS.name: np.array([[101, 2417, 4377, 102]], np.int64)})[0]
    assert out.shape == (1, emb.shape[1])
