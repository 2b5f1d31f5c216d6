"""The quick end-to-end build: train, distil, quantize, export, load in ONNX Runtime, compare."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import onnx
import pytest

from export import onnx_tools
from export.card import Card, GateError, Row, Rule, check_gates
from export.cli import FAMILIES
from export.options import ExportOptions, finish
from export.repository import ModelFolder, is_done
from kernels.features import FeatureSpec, FeatureTables, assemble_features
from server.contract.model_config import load_config
from server.contract.pipelines import (
    RecommendSpec,
    ScorePreprocessing,
    ScoreSpec,
    load_pipeline_spec,
)

SERVED = [
    "risk",
    "query_encoder",
    "ranker",
    "classify_sentiment",
    "classify_recommended",
    "classify_department",
    "search_encoder",
]
_NP = {"TYPE_FP32": np.float32, "TYPE_INT64": np.int64}
# the first test builds the shared quick repository (2-3 minutes on an idle 2-core machine; its
# training budgets are CPU seconds, so a loaded machine stretches the wall time)
pytestmark = pytest.mark.timeout(1200)


def _feeds(config, batch: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for t in config.input:
        shape = [batch] + [8 if d == -1 else d for d in t.dims]
        dt = _NP[t.data_type]
        out[t.name] = (
            rng.integers(0, 5, shape).astype(dt)
            if dt is np.int64
            else rng.standard_normal(shape).astype(dt)
        )
    return out


@pytest.mark.parametrize("name", SERVED)
def test_served_model_loads_and_matches_its_config(quick_repo: Path, name: str):
    folder = quick_repo / name
    config = load_config(folder / "config.toml")  # the server's own contract
    assert config.name == name and config.max_batch_size > 0 and config.dynamic_batching is not None
    model = onnx.load(str(folder / "1" / "model.onnx"))
    assert model.ir_version <= 10
    sess = onnx_tools.session(folder / "1" / "model.onnx")
    assert [i.name for i in sess.get_inputs()] == [t.name for t in config.input]
    assert [o.name for o in sess.get_outputs()] == [t.name for t in config.output]
    outs = sess.run(None, _feeds(config))
    for spec, value in zip(config.output, outs, strict=True):
        assert value.shape[0] == 3
        assert list(value.shape[1:]) == [8 if d == -1 else d for d in spec.dims]
        assert np.isfinite(value).all()
    for t in config.input:
        if -1 in t.dims:
            assert t.pad_value is not None


@pytest.mark.parametrize("name", SERVED)
def test_card_schema_and_export_check(quick_repo: Path, name: str):
    card = json.loads((quick_repo / name / "card.json").read_text())
    for key in ("model", "task", "dataset", "metric", "rows", "gate"):
        assert key in card
    assert set(card["dataset"]) >= {"name", "rows", "split"}
    variants = [r["variant"] for r in card["rows"]]
    assert "student" in variants and "teacher" in variants
    for r in card["rows"]:
        assert set(r) >= {"variant", "metric", "metrics", "params", "size_bytes", "latency_ms"}
    # latency is recorded, never gated with --quick
    assert all(not r["enforced"] for r in card["gate"]["rules"] if "speed-up" in r["rule"])
    assert card["export_check"]["passed"], "the ONNX export matched torch on held-out inputs"
    assert (quick_repo / name / "card.md").read_text().startswith(f"# {name}")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_publishes_its_folders(quick_repo: Path, family: str):
    folders = FAMILIES[family][2]
    assert is_done(quick_repo, folders), f"{family}: {folders}"


def _pipeline(repo: Path, name: str):
    got, spec = load_pipeline_spec(repo / name / "pipeline.toml")  # the server's own contract
    assert got == name
    assert not (repo / name / "config.toml").exists(), "a pipeline is not a model"
    return spec


def test_score_pipeline(quick_repo: Path):
    spec = _pipeline(quick_repo, "score")
    assert isinstance(spec, ScoreSpec) and spec.model == "risk"
    assert 0 < spec.threshold < 1
    pre = msgspec.json.decode(
        (quick_repo / spec.model / "1" / spec.preprocess).read_bytes(), type=ScorePreprocessing
    )
    assert set(pre.vocab) >= {"Month", "VisitorType"}
    inputs = load_config(quick_repo / spec.model / "config.toml").input
    assert [t.dims for t in inputs] == [[len(pre.numeric)], [len(pre.categorical)]]


def test_recommend_pipeline(quick_repo: Path):
    spec = _pipeline(quick_repo, "recommend")
    assert isinstance(spec, RecommendSpec) and spec.ranking is not None
    encoder = load_config(quick_repo / spec.query_encoder / "config.toml")
    assert encoder.model_warmup.dynamic_dim == spec.max_history
    v, cat = quick_repo / "recommend" / "1", spec.catalog
    emb = np.load(v / spec.item_embeddings)
    assert emb.dtype == np.float32 and emb.shape[1] == encoder.output[0].dims[0]
    assert emb.shape[0] == len(json.loads((v / cat.item_ids).read_text()))
    assert emb.shape[0] == len(json.loads((v / cat.item_titles).read_text()))
    assert len(np.load(v / cat.item_prices)) == len(np.load(v / spec.popularity)) == emb.shape[0]


def test_ranker_folder_holds_the_ranking_artifacts(quick_repo: Path):
    ranking = _pipeline(quick_repo, "recommend").ranking
    v = quick_repo / ranking.model / "1"
    spec = FeatureSpec.load(v / ranking.feature_spec)
    files = ranking.tables
    tables = FeatureTables(*(np.load(v / getattr(files, f)) for f in files.__struct_fields__))
    user_ids = json.loads((v / ranking.user_ids).read_text())
    assert tables.user_features.shape[0] == len(user_ids) + 1  # row 0: the unknown user
    out = np.empty((4, spec.n_features), np.float32)
    assemble_features(
        spec,
        tables,
        np.array([ranking.unknown_user_row, 1]),
        np.array([0, 2, 4]),
        np.array([1, 2, 3, 4]),
        np.array([0, 1, 1]),
        np.array([5]),
        np.array([ranking.recent_age_step_s], np.float32),
        out,
    )
    assert np.isfinite(out).all()
    ranker = load_config(quick_repo / ranking.model / "config.toml")
    assert ranker.input[0].dims == [spec.n_features]


def test_risk_contributions_are_exact(quick_repo: Path):
    folder = quick_repo / "risk"
    pre = msgspec.json.decode(
        (folder / "1" / "preprocess.json").read_bytes(), type=ScorePreprocessing
    )
    config = load_config(folder / "config.toml")
    sess = onnx_tools.session(folder / "1" / "model.onnx")
    rng = np.random.default_rng(1)
    numeric, categorical = (t.name for t in config.input)
    prob, logit, contrib = sess.run(
        None,
        {
            numeric: rng.standard_normal((5, len(pre.numeric))).astype(np.float32),
            categorical: rng.integers(0, 3, (5, len(pre.categorical))).astype(np.int64),
        },
    )
    assert contrib.shape[1] == len(pre.contributions)
    np.testing.assert_allclose(contrib.sum(1) + pre.bias, logit[:, 0], atol=1e-5)
    np.testing.assert_allclose(prob[:, 0], 1 / (1 + np.exp(-logit[:, 0])), atol=1e-6)


def test_resume_keeps_finished_models(quick_repo: Path, capsys):
    from export.cli import main

    before = (quick_repo / "risk" / "card.json").stat().st_mtime_ns
    assert main(["risk", "--quick", "--out", str(quick_repo)]) == 0
    assert (quick_repo / "risk" / "card.json").stat().st_mtime_ns == before
    assert "already in" in capsys.readouterr().err


def _damage(path: Path, out: Path) -> Path:
    """Scramble every int8 weight tensor: a quantization gone wrong (wrong scales, bad packing)."""
    from onnx import numpy_helper

    model = onnx.load(str(path))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype == np.int8 and a.size > 1000:
            init.CopyFrom(
                numpy_helper.from_array(rng.permutation(a.reshape(-1)).reshape(a.shape), init.name)
            )
    onnx.save(model, str(out))
    return out


def test_damaged_quantization_fails_the_gate(quick_repo: Path, tmp_path: Path):
    work = quick_repo / ".export-cache" / "quick" / "seed0" / "text"
    fp32 = work / "student_sentiment.onnx"
    good = onnx_tools.quantize_dynamic_int8(fp32, tmp_path / "good.onnx", op_types=("MatMul",))
    bad = _damage(good, tmp_path / "bad.onnx")
    ids = np.random.default_rng(0).integers(1000, 20000, (32, 12)).astype(np.int64)
    ref = onnx_tools.session(fp32).run(None, {"input_ids": ids})[0]

    def cos(path):
        got = onnx_tools.session(path).run(None, {"input_ids": ids})[0]
        return round(float(onnx_tools.cosine_rows(ref, got).mean()), 4)

    assert cos(good) > cos(bad)
    rule = Rule("student-int8 mean cosine to student >= 0.99", cos(bad), 0.99, cos(bad) >= 0.99)
    rows = [Row("teacher", 1.0, {}), Row("student", 0.9, {}), Row("student-int8", 0.9, {})]
    gate = check_gates(
        rows,
        served="student-int8",
        speed_batch="batch_1",
        min_speedup=3.0,
        quick=True,
        quant_rule=rule,
    )
    assert not gate["passed"]
    opts = ExportOptions(out=tmp_path / "repo")
    folder = ModelFolder(opts.out, "damaged")
    card = Card("damaged", "t", {"name": "d", "rows": 1, "split": "s"}, "recall@10", rows, gate)
    with pytest.raises(GateError, match="mean cosine to student >= 0.99"):
        finish(opts, folder, card)
    assert not (opts.out / "damaged").exists(), "a model failing its gate is not published"
