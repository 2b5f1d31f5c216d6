"""The text family: its ONNX specs, the `classify/` pipeline folder, the gate failures kept until
the end, the honest-evaluation rules (disjoint splits; C, int8 mode and served variant chosen on
validation only), the lexical bag's export, and the quick build's heads and pipeline."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from export.card import GateError, Row, served_variant
from export.options import ExportOptions
from export.text_baselines import choose_baseline, classify_baseline_row
from export.text_classify import (
    CLASSIFY,
    choose_int8_mode,
    classifier_spec,
    write_classify_pipeline,
)
from export.text_data import INPUT_IDS, TASKS, TextData, TextIds, random_split
from export.text_distil import _key
from export.text_onnx import INT8_MODES, TextRun, teacher_spec
from server.contract.model_config import decode_config, encode_config, load_config
from server.contract.pipelines import ClassifyHead, ClassifySpec, artifact_path, load_pipeline_spec

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


def test_teacher_spec_has_every_head():
    teacher = teacher_spec({"sentiment": TASKS["sentiment"], "recommended": ["no", "yes"]})
    assert teacher.output_names == ["sentiment_logits", "recommended_logits"]
    assert [t.dims for t in teacher.outputs] == [(3,), (2,)]


def test_classify_pipeline_folder_truncates_at_the_build_length(tmp_path: Path):
    run = SimpleNamespace(
        opts=ExportOptions(out=tmp_path), tokenizer='{"model": {}}', ids=SimpleNamespace(max_len=96)
    )
    heads = [ClassifyHead(task="sentiment", model="classify_sentiment", labels=TASKS["sentiment"])]
    write_classify_pipeline(run, heads)
    name, spec = load_pipeline_spec(tmp_path / "classify" / "pipeline.toml")
    assert name == "classify" and isinstance(spec, ClassifySpec)
    assert spec.heads == heads and spec.max_tokens == 96
    assert artifact_path(tmp_path / "classify" / "1", spec.tokenizer).read_text() == run.tokenizer


def test_publishing_failures_are_kept_and_raised_together(tmp_path: Path):
    run = TextRun(ExportOptions(out=tmp_path), *[None] * 6, tmp_path, "{}")

    def fail(msg: str):
        raise GateError(msg)

    assert not run.attempt(fail, "classify_department: gate failed")
    assert run.attempt(lambda: None)
    assert not run.attempt(fail, "classify_sentiment: gate failed")
    with pytest.raises(GateError, match="classify_department.*\nclassify_sentiment"):
        run.raise_failures()


def test_the_split_is_disjoint_and_exact():
    split = random_split(22_636, seed=0)
    assert [len(split[k]) for k in ("train", "valid", "test")] == [15_845, 3_395, 3_396]
    seen = np.concatenate(list(split.values()))
    assert len(np.unique(seen)) == len(seen) == 22_636
    sub = random_split(22_636, seed=0, take=2_400)
    assert [len(sub[k]) for k in ("train", "valid", "test")] == [1_680, 360, 360]
    assert len(np.unique(np.concatenate(list(sub.values())))) == 2_400
    assert not np.array_equal(random_split(100, 0)["test"], random_split(100, 1)["test"])


def test_the_teacher_pass_cache_is_keyed_by_the_token_ids():
    ids = TextIds({"train": np.ones((3, 4), np.int64), "valid": np.ones((2, 4), np.int64)}, 4)
    other = TextIds({"train": np.ones((3, 4), np.int64), "valid": np.zeros((2, 4), np.int64)}, 4)
    assert _key(ids, "m") == _key(ids, "m") != _key(other, "m")


def _toy_reviews(n: int = 240, seed: int = 0) -> TextData:
    """Reviews whose words give their sentiment away, with noise words."""
    rng = np.random.default_rng(seed)
    words = {0: ["awful", "returned", "cheap"], 1: ["okay", "fine", "meh"], 2: ["love", "great"]}
    y = rng.integers(0, 3, n)
    texts = [
        " ".join([*rng.choice(words[int(c)], 2), *rng.choice(["dress", "top", "fit"], 3)])
        for c in y
    ]
    flip = rng.random(n) < 0.2  # label noise, so that C matters
    y = np.where(flip, rng.integers(0, 3, n), y)
    labels = {"sentiment": y}
    return TextData(texts, labels, random_split(n, seed), {"sentiment": ["n", "o", "p"]}, n, {}, 0)


def test_the_baseline_c_is_chosen_on_validation_only():
    data = _toy_reviews()
    tr, va = data.split["train"], data.split["valid"]
    texts = np.array(data.texts, dtype=object)
    y = data.labels["sentiment"]
    b = choose_baseline(texts[tr], y[tr], texts[va], y[va], cs=(0.01, 1.0, 100.0))
    assert set(b.valid) == {f"word 1-2, C={c:g}" for c in (0.01, 1.0, 100.0)}
    assert b.valid[f"word 1-2, C={b.c:g}"] == max(b.valid.values())
    row = classify_baseline_row(data, "sentiment", ("word 1-2",))
    shuffled = dict(data.labels)
    test = data.split["test"]
    y2 = y.copy()
    y2[test] = np.random.default_rng(1).permutation(y[test])
    shuffled["sentiment"] = y2
    data2 = TextData(data.texts, shuffled, data.split, data.label_names, data.rows, {}, 0)
    row2 = classify_baseline_row(data2, "sentiment", ("word 1-2",))
    assert row2.note == row.note and row2.valid_metric == row.valid_metric  # same C, same valid


def _graphs(rng, n_valid: int, n_test: int) -> dict:
    """Fake evaluated graphs: per mode, logits on validation and on test."""
    return {
        m: SimpleNamespace(
            valid={"sentiment": rng.standard_normal((n_valid, 3))},
            test={"sentiment": rng.standard_normal((n_test, 3))},
        )
        for m in ["student", *INT8_MODES]
    }


def test_the_int8_mode_and_served_variant_ignore_test():
    rng = np.random.default_rng(0)
    graphs = _graphs(rng, 60, 50)
    y_valid = rng.integers(0, 3, 60)
    mode = choose_int8_mode(graphs, y_valid, "sentiment")
    for m in INT8_MODES:  # test logits scrambled: the choice cannot move
        graphs[m].test["sentiment"] = rng.permutation(graphs[m].test["sentiment"])
        assert choose_int8_mode(graphs, y_valid, "sentiment") == mode
    # the served variant reads valid_metric: swapping the test metrics changes nothing
    rows = [
        Row("student", 0.70, {}, latency_ms={"batch_1": 2.0}, valid_metric=0.72),
        Row("student-int8", 0.60, {}, latency_ms={"batch_1": 1.0}, valid_metric=0.719),
    ]
    assert served_variant(rows, "batch_1") == "student-int8"
    rows[0].metric, rows[1].metric = 0.60, 0.70
    assert served_variant(rows, "batch_1") == "student-int8"
    rows[1].valid_metric = 0.60  # a worse int8 on validation is not served
    assert served_variant(rows, "batch_1") == "student"


def test_the_lexical_bag_exports_to_onnx(tmp_path: Path):
    import torch

    from export import onnx_tools
    from export.text_lexical import Lexical, fit_idf

    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, (40, 12)).astype(np.int64)
    ids[:, 8:] = 0  # padding
    ids[:20, 1] = ids[:20, 2] = 2000  # shared unigrams and bigrams: non-zero idf
    lex = Lexical(fit_idf(ids), 3)
    torch.nn.init.normal_(lex.table.weight)
    path = onnx_tools.export_onnx(
        lex,
        (torch.tensor(ids[:2]),),
        tmp_path / "lex.onnx",
        ["input_ids"],
        ["logits"],
        {"input_ids": {0: "b", 1: "t"}, "logits": {0: "b"}},
    )
    got = onnx_tools.session(path).run(None, {"input_ids": ids})[0]
    with torch.no_grad():
        ref = lex(torch.tensor(ids)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert np.abs(ref[:20]).sum() > 0


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
def test_quick_cards_state_their_split_and_choices(quick_repo: Path):
    import json

    for name in HEADS:
        card = json.loads((quick_repo / name / "card.json").read_text())
        assert "train" in card["dataset"]["split"] and "test" in card["dataset"]["split"]
        assert card["int8_mode"] in INT8_MODES and card["served_variant"] == card["gate"]["served"]
        assert all(r["valid_metric"] is not None for r in card["rows"])
        assert [r["variant"] for r in card["rows"]] == [
            "baseline",
            "teacher",
            "student",
            "student-int8",
        ]


def test_a_head_that_failed_its_gate_keeps_its_earlier_model_in_classify(tmp_path: Path):
    from export.text import kept_heads

    (tmp_path / "classify_recommended").mkdir()
    (tmp_path / "classify_recommended" / "config.toml").write_text("")  # a preview published
    data = SimpleNamespace(tasks=["sentiment", "recommended", "department"], label_names=TASKS)
    kept = kept_heads(ExportOptions(out=tmp_path), data, {"sentiment"})
    assert kept == [
        ClassifyHead(task="recommended", model="classify_recommended", labels=["no", "yes"])
    ]
