"""The additive score families (risk, cancellation_risk): no choice is made on test (the same
build over shuffled test labels chooses the same C, teacher, student and threshold), the teacher
is timed in the student's runtime, and the quick repository holds what the server reads."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from export.options import ExportOptions
from export.risk_models import RiskSplit, StudentSettings
from export.score_family import (
    ScoreData,
    ScoreSettings,
    build_score_models,
    fit_preprocessing,
    hgb,
    transform,
)
from export.specs import OnnxSpec, TensorSpec
from export.training import seed_everything
from server.contract.order_history import FEATURES, OrderHistory
from server.contract.pipelines import OrderScoreSpec, ScorePreprocessing, load_pipeline_spec

SPEC = OnnxSpec(
    name="toy_score",
    inputs=(
        TensorSpec("numeric", "TYPE_FP32", (3,)),
        TensorSpec("categorical", "TYPE_INT64", (1,), min_value=0),
    ),
    outputs=(
        TensorSpec("probability", "TYPE_FP32", (1,)),
        TensorSpec("logit", "TYPE_FP32", (1,)),
        TensorSpec("contributions", "TYPE_FP32", (4,)),
    ),
    max_batch_size=256,
    atol=1e-4,
)
SETTINGS = ScoreSettings(
    (hgb(0.1, 7), hgb(0.1, 15, 50, 1.0)),
    StudentSettings(hidden=4, epochs=3, batch_size=256, budget_s=10, patience=3),
    latency_runs=5,
)


def _toy(seed: int = 0, n: int = 3000) -> ScoreData:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.exponential(size=n),
            "c": rng.normal(size=n),
            "k": rng.choice(["x", "y", "z"], n),
        }
    )
    logit = 1.5 * df["a"] - df["b"] + (df["k"] == "y") * 1.0 - 1.0
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    parts = np.split(np.arange(n), [n // 2, 3 * n // 4])
    pre = fit_preprocessing(df.iloc[parts[0]], ["a", "b", "c"], ["b"], ["k"])
    splits = [RiskSplit(*transform(df.iloc[p], pre), y[p]) for p in parts]
    return ScoreData(*splits, pre=pre)


def _build(tmp: Path, data: ScoreData):
    seed_everything(0)
    opts = ExportOptions(out=tmp, quick=True)
    tmp.mkdir(parents=True, exist_ok=True)
    return build_score_models(opts, data, SPEC, "pr_auc", SETTINGS, tmp / "model.onnx")


def test_no_choice_depends_on_the_test_labels(tmp_path: Path):
    data = _toy()
    built = _build(tmp_path / "a", data)
    shuffled = ScoreData(
        data.train,
        data.valid,
        RiskSplit(data.test.num, data.test.cat, np.random.default_rng(1).permutation(data.test.y)),
        data.pre,
    )
    again = _build(tmp_path / "b", shuffled)
    assert again.threshold == built.threshold
    assert again.extra["teacher_setting"] == built.extra["teacher_setting"]
    assert again.extra["teacher_grid"] == built.extra["teacher_grid"]  # scored on valid
    assert again.rows[0].note == built.rows[0].note  # the baseline's C
    for a, b in zip(again.exported.outputs, built.exported.outputs, strict=True):
        np.testing.assert_array_equal(a, b)  # the same student weights
    assert [r.valid_metric for r in again.rows] == [r.valid_metric for r in built.rows]
    assert [r.metric for r in again.rows] != [r.metric for r in built.rows]  # test did change


def test_rows_carry_validation_and_the_teacher_runs_in_onnxruntime(tmp_path: Path):
    built = _build(tmp_path, _toy())
    assert [r.variant for r in built.rows] == ["baseline", "teacher", "student"]
    assert all(r.valid_metric is not None for r in built.rows)
    teacher, student = built.rows[1], built.rows[2]
    assert teacher.runtime == student.runtime == "onnxruntime"
    assert set(teacher.latency_ms) == set(student.latency_ms) == {"batch_1", "batch_64"}
    assert any("speed-up" in r["rule"] for r in built.gate["rules"])
    assert built.extra["additivity_max_abs"] < 1e-4


# -- the quick repository --------------------------------------------------------------------------


def _card(repo: Path, name: str) -> dict:
    return json.loads((repo / name / "card.json").read_text())


@pytest.mark.parametrize("name", ["risk", "cancellation_risk"])
def test_cards_are_honest(quick_repo: Path, name: str):
    card = _card(quick_repo, name)
    rows = {r["variant"]: r for r in card["rows"]}
    assert set(rows) == {"baseline", "teacher", "student"}
    assert all(r["valid_metric"] is not None for r in rows.values())
    assert rows["teacher"]["runtime"] == rows["student"]["runtime"] == "onnxruntime"
    assert card["gate"]["served"] == "student"
    assert card["threshold_rule"].endswith("on the validation split")
    assert "budget" in card and "speed_note" in card


def test_cancellation_card_states_its_label_and_split(quick_repo: Path):
    card = _card(quick_repo, "cancellation_risk")
    assert card["metric"] == "pr_auc" and "PR-AUC" in card["metric_note"]
    match = card["cancellation_matching"]
    assert 0 < match["matched"] <= match["cancellation_lines"]
    assert (
        match["matched"]
        + match["no_earlier_purchase"]
        + match["earlier_purchases_all_taken"]
        + match["older_than_window"]
        == match["cancellation_lines"]
    )
    split = card["dataset"]["split"]
    for part in ("train 2010-12-01", "valid 2011-05-01", "test 2011-07-01", "cancelled"):
        assert part in split
    assert card["excluded_recent_lines"]["lines"] > 0


def test_cancellation_pipeline_holds_the_order_history(quick_repo: Path):
    name, spec = load_pipeline_spec(quick_repo / "score_cancellation" / "pipeline.toml")
    assert name == "score_cancellation" and isinstance(spec, OrderScoreSpec)
    assert spec.model == "cancellation_risk" and 0 < spec.threshold < 1
    history = OrderHistory.load(quick_repo / "score_cancellation" / "1" / spec.history)
    assert "12346" in set(history.customer_ids.tolist())
    assert len(history.stock_codes) > 3000 and len(history.pair_keys) > 100_000
    pre_path = quick_repo / "cancellation_risk" / "1" / spec.preprocess
    pre = msgspec.json.decode(pre_path.read_bytes(), type=ScorePreprocessing)
    assert pre.numeric == FEATURES and pre.categorical == ["country", "hour", "weekday", "month"]


def test_the_server_computes_the_features_export_trained_on(quick_repo: Path, tmp_path: Path):
    """Real test-month lines: the pipeline's inputs from an OrderLine equal export's rows."""
    from types import SimpleNamespace

    from export.cancellation import load_cancellation_data
    from export.cancellation_data import feature_frame
    from server.pipelines.order_score import OrderScorePipeline
    from server.schemas.v1 import OrderLine

    _, spec = load_pipeline_spec(quick_repo / "score_cancellation" / "pipeline.toml")
    pre_path = quick_repo / "cancellation_risk" / "1" / spec.preprocess
    pre = msgspec.json.decode(pre_path.read_bytes(), type=ScorePreprocessing)
    history = OrderHistory.load(quick_repo / "score_cancellation" / "1" / spec.history)
    model = SimpleNamespace(name="cancellation_risk", version=1)
    pipeline = OrderScorePipeline(spec, model, pre, history)  # type: ignore[arg-type]
    d = load_cancellation_data(ExportOptions(out=tmp_path, quick=True))
    lines = d.frames["test"].iloc[::5000]
    want_num, want_cat = transform(feature_frame(history, lines), pre)
    for i, (_, row) in enumerate(lines.iterrows()):
        line = OrderLine(
            stock_code=row["StockCode"],
            quantity=int(row["Quantity"]),
            unit_price=float(row["UnitPrice"]),
            country=row["Country"],
            invoice_time=row["InvoiceDate"].to_pydatetime(),
            customer_id=str(row["CustomerID"]),
        )
        got = pipeline.features(line)
        np.testing.assert_allclose(got["numeric"][0], want_num[i], rtol=1e-6, atol=1e-6)
        assert got["categorical"][0].tolist() == want_cat[i].tolist()
