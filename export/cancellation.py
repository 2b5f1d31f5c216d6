"""Cancellation risk on Online Retail: will this purchase line be cancelled within 90 days?

The labels, the order history and the time split are in export/cancellation_data.py; the rows
(logistic regression baseline, gradient-boosted trees teacher timed in ONNX Runtime, additive
student with exact per-feature contributions) and the gate are those of every additive score
family (export/score_family.py). Every choice is made on the validation months; the test months
are scored once, for the card.

Published: the `cancellation_risk` model (with `1/preprocess.json`) and the `score_cancellation`
pipeline folder (`OrderScoreSpec`; `1/order_history.npz`: the customers' and products' history the
server looks up for an order line, as of its invoice time).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec
import numpy as np
import pandas as pd

from export.cancellation_data import (
    CATEGORICAL,
    SPLIT_DATES,
    WINDOW_DAYS,
    MatchReport,
    build_history,
    feature_frame,
    label_cancellations,
    labelled_lines,
    split_by_time,
)
from export.card import Card, spec_summary
from export.data import load_retail, load_retail_cancellations, read_retail
from export.options import ExportOptions, finish
from export.repository import ModelFolder
from export.risk_models import RiskSplit, StudentSettings
from export.score_family import (
    THRESHOLD_RULE,
    Built,
    Clock,
    ScoreData,
    ScoreSettings,
    build_score_models,
    fit_preprocessing,
    hgb,
    transform,
)
from export.specs import OnnxSpec, TensorSpec
from export.training import seed_everything
from server.contract.order_history import FEATURES, LOG1P, OrderHistory
from server.contract.pipelines import OrderScoreSpec

__all__ = [
    "CANCELLATION",
    "MODEL_NAME",
    "PIPELINE_NAME",
    "export_cancellation_risk",
    "load_cancellation_data",
]

MODEL_NAME = "cancellation_risk"
PIPELINE_NAME = "score_cancellation"
METRIC = "pr_auc"

CANCELLATION = OnnxSpec(
    name=MODEL_NAME,
    inputs=(
        TensorSpec("numeric", "TYPE_FP32", (len(FEATURES),)),
        TensorSpec("categorical", "TYPE_INT64", (len(CATEGORICAL),), min_value=0),  # codes
    ),
    outputs=(
        TensorSpec("probability", "TYPE_FP32", (1,)),
        TensorSpec("logit", "TYPE_FP32", (1,)),
        TensorSpec("contributions", "TYPE_FP32", (len(FEATURES) + len(CATEGORICAL),)),
    ),
    max_batch_size=1024,
    preferred_batch_size=(64, 256),
    atol=1e-4,
)
TIERS = {  # budgets: preview 30 s, full 2 min (wall, this 2-core machine when quiet)
    "quick": ScoreSettings(
        (hgb(0.1, 15, 200, 1.0),), StudentSettings(hidden=4, epochs=2, batch_size=512, budget_s=3)
    ),
    "preview": ScoreSettings(
        (hgb(0.1, 15, 200, 1.0),),
        StudentSettings(hidden=8, epochs=4, batch_size=1024, budget_s=8, patience=2),
        latency_runs=50,
    ),
    "full": ScoreSettings(
        (
            hgb(0.05, 15, 200, 1.0),
            hgb(0.1, 15, 200, 1.0),
            hgb(0.05, 31, 400, 1.0),
            hgb(0.05, 15),
            hgb(0.03, 7, 200, 1.0),
        ),
        StudentSettings(hidden=16, epochs=30, batch_size=1024, budget_s=45, patience=5),
    ),
}
BUDGET = {"preview": "30 s wall", "full": "2 min wall"}
QUICK_ROWS = 8000  # --quick: random training and validation lines (the test months stay whole)


@dataclass
class CancellationData:
    data: ScoreData
    history: OrderHistory
    frames: dict[str, pd.DataFrame]  # train / valid / test lines (InvoiceDate, y, ...)
    cleaning: dict
    match: MatchReport
    excluded_recent: int  # purchases of the last WINDOW_DAYS: label not known yet
    data_end: pd.Timestamp


def load_cancellation_data(opts: ExportOptions) -> CancellationData:
    raw = read_retail()
    purchases, rep = load_retail(raw)
    cancels, crep = load_retail_cancellations(raw)
    cancelled, matched, match = label_cancellations(purchases, cancels)
    history = build_history(purchases, cancels, matched)
    data_end = raw["InvoiceDate"].max()
    lines = labelled_lines(purchases, cancelled, data_end)
    frames = dict(zip(("train", "valid", "test"), split_by_time(lines), strict=True))
    if opts.quick:
        for k in ("train", "valid"):
            frames[k] = frames[k].sample(min(QUICK_ROWS, len(frames[k])), random_state=opts.seed)
    feats = {k: feature_frame(history, f) for k, f in frames.items()}
    pre = fit_preprocessing(feats["train"], FEATURES, LOG1P, CATEGORICAL)
    splits = [
        RiskSplit(*transform(feats[k], pre), frames[k]["y"].to_numpy())
        for k in ("train", "valid", "test")
    ]
    return CancellationData(
        ScoreData(*splits, pre=pre),
        history,
        frames,
        {"purchases": rep.to_dict(), "cancellations": crep.to_dict()},
        match,
        len(purchases) - len(lines),
        data_end,
    )


def _split_text(d: CancellationData) -> str:
    parts = []
    for name, f in d.frames.items():
        t = f["InvoiceDate"]
        parts.append(
            f"{name} {t.min():%Y-%m-%d %H:%M} .. {t.max():%Y-%m-%d %H:%M}: {len(f):,} lines, "
            f"{int(f['y'].sum()):,} cancelled ({f['y'].mean():.2%})"
        )
    return (
        f"by invoice date (train < {SPLIT_DATES[0]} <= valid < {SPLIT_DATES[1]} <= test): "
        + "; ".join(parts)
    )


DRIFTING = ["customer_lines", "customer_days_since_first", "product_lines", "customer_spend"]


def _drift(d: CancellationData) -> dict[str, float]:
    """Share of valid and test lines above the training lines' 99th percentile, for the history
    counts that grow with the data's age (no labels read)."""
    out = {}
    for name in DRIFTING:
        j = FEATURES.index(name)
        top = np.quantile(d.data.train.num[:, j], 0.99)
        for split in ("valid", "test"):
            out[f"{name} ({split})"] = round(
                float(np.mean(getattr(d.data, split).num[:, j] > top)), 4
            )
    return out


def _teacher_note(built: Built) -> str:
    t, s = built.rows[1], built.rows[2]
    return (
        f"the teacher is the best row on validation ({t.valid_metric} PR-AUC; student "
        f"{s.valid_metric}) and falls behind on the test months ({t.metric} vs {s.metric}): the "
        "history counts grow with the data's age (see features.drift: many later lines lie above "
        "every training value), trees are flat beyond the largest value they were trained on "
        "while the additive student and the logistic baseline extrapolate. Nothing was re-chosen "
        "after seeing test: the teacher's setting and iterations stay those of validation"
    )


def _notes(d: CancellationData, built: Built, opts: ExportOptions, clock: Clock) -> dict:
    return {
        "label": f"a purchase line is cancelled when a later C line of the same customer and "
        f"StockCode within {WINDOW_DAYS} days cancels at least part of its quantity; each C line "
        "is matched to the most recent earlier purchase no earlier C line took",
        "cancellation_matching": d.match.to_dict(),
        "excluded_recent_lines": {
            "lines": d.excluded_recent,
            "rule": f"purchases after {d.data_end - pd.Timedelta(days=WINDOW_DAYS)} (the last "
            f"{WINDOW_DAYS} days before the data's end, {d.data_end}): label not known yet",
        },
        "features": {
            "numeric": FEATURES,
            "categorical": CATEGORICAL,
            "rule": "customer and product history strictly before the line's invoice time "
            "(order_history.npz, the same tables and code the server uses); a new customer or "
            "product has none",
            "month_note": "the validation (May-Jun) and test (Jul-Sep) months never occur in "
            "training: month is the <unk> category there and contributes its untrained value (0 "
            "in the student)",
            "drift": _drift(d),
        },
        "metric_note": "PR-AUC (average precision) primary: 2% of lines are cancelled, so ROC-AUC "
        "is dominated by the many easy negatives while PR-AUC measures the precision of the "
        "lines flagged first, what a review queue sees; ROC-AUC reported beside it",
        "label_horizon_note": f"labels of the last {WINDOW_DAYS} days of train (and valid) use "
        "C lines that fall in the next split: labels only, never features",
        "budget": {
            "tier": "quick" if opts.quick else opts.tier,
            "wall": BUDGET.get("quick" if opts.quick else opts.tier, "-"),
            "spent_until_card": clock.spent(),
            "bought": f"{len(d.data.train):,} training lines, teacher grid of "
            f"{len(built.extra['teacher_grid'])}, student "
            f"{built.extra['student_training']['epochs']} epochs",
        },
    }


def _card(opts: ExportOptions, d: CancellationData, built: Built, clock: Clock) -> Card:
    split = _split_text(d)
    if opts.quick:
        split += f"; --quick: {QUICK_ROWS} random train and valid lines"
    return Card(
        MODEL_NAME,
        f"cancellation risk per purchase line (binary: cancelled within {WINDOW_DAYS} days); "
        "/v1/score task cancellation_risk",
        {
            "name": "Online Retail (UCI 352), purchase lines of known customers",
            "rows": sum(len(f) for f in d.frames.values()),
            "split": split,
        },
        METRIC,
        built.rows,
        built.gate,
        extra={
            **_notes(d, built, opts, clock),
            "cleaning": d.cleaning,
            "export_check": built.exported.check.to_dict(),
            "contract": spec_summary(CANCELLATION),
            **built.extra,
            "quantization": "not applied: the additive student has no MatMul/Gemm",
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )


def export_cancellation_risk(opts: ExportOptions) -> None:
    clock = Clock()
    seed_everything(opts.seed)
    opts.log("[cancellation_risk] labels and order history")
    d = load_cancellation_data(opts)
    settings = TIERS["quick" if opts.quick else opts.tier]
    folder = ModelFolder(opts.out, MODEL_NAME)
    built = build_score_models(
        opts, d.data, CANCELLATION, METRIC, settings, folder.version / "model.onnx"
    )
    spec = OrderScoreSpec(model=MODEL_NAME, threshold=built.threshold)
    pre = msgspec.structs.replace(d.data.pre, bias=built.bias)
    (folder.version / spec.preprocess).write_bytes(msgspec.json.encode(pre))
    notes = {"variant": "student", "threshold_rule": THRESHOLD_RULE}
    folder.write_config(CANCELLATION.config(notes))
    if "teacher_note" in built.extra:
        built.extra["teacher_note"] = _teacher_note(built)
    finish(opts, folder, _card(opts, d, built, clock))  # raises on a failed gate
    pipeline = ModelFolder(opts.out, PIPELINE_NAME)
    pipeline.write_pipeline(spec)
    pipeline.version.mkdir(parents=True, exist_ok=True)
    d.history.save(pipeline.version / spec.history)
    pipeline.publish()
