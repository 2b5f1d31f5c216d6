"""Purchase-intent score on Online Shoppers Intention (label `Revenue`): the model `risk`.

The rows, the student and the gate are those of every additive score family
(export/score_family.py): logistic regression baseline, gradient-boosted trees teacher timed in
ONNX Runtime, additive student with exact per-feature contributions; every choice on validation.

Published: the `risk` model (with `1/preprocess.json`, a `ScorePreprocessing`) and the `score`
pipeline folder (`ScoreSpec`: the model and the decision threshold chosen on validation).
"""

from __future__ import annotations

import time

import msgspec
import numpy as np

from export.card import Card, spec_summary
from export.data import CleaningReport, load_shoppers
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
from server.contract.pipelines import ScoreSpec

__all__ = ["MODEL_NAME", "PIPELINE_NAME", "RISK", "export_risk", "load_risk_data"]

MODEL_NAME = "risk"
PIPELINE_NAME = "score"
METRIC = "roc_auc"
NUMERIC = [
    "Administrative",
    "Administrative_Duration",
    "Informational",
    "Informational_Duration",
    "ProductRelated",
    "ProductRelated_Duration",
    "BounceRates",
    "ExitRates",
    "PageValues",
    "SpecialDay",
    "Weekend",
]
LOG1P = NUMERIC[:6] + ["PageValues"]  # heavy-tailed counts and durations
CATEGORICAL = ["Month", "VisitorType", "OperatingSystems", "Browser", "Region", "TrafficType"]

RISK = OnnxSpec(
    name=MODEL_NAME,
    inputs=(
        TensorSpec("numeric", "TYPE_FP32", (len(NUMERIC),)),
        TensorSpec("categorical", "TYPE_INT64", (len(CATEGORICAL),), min_value=0),  # codes
    ),
    outputs=(
        TensorSpec("probability", "TYPE_FP32", (1,)),
        TensorSpec("logit", "TYPE_FP32", (1,)),
        TensorSpec("contributions", "TYPE_FP32", (len(NUMERIC) + len(CATEGORICAL),)),
    ),
    max_batch_size=1024,
    preferred_batch_size=(64, 256),
    atol=1e-4,
)
TIERS = {  # what each tier trains (budgets: preview 15 s, full 1 min on this 2-core machine)
    "quick": ScoreSettings((hgb(0.1, 15),), StudentSettings(hidden=8, epochs=8, budget_s=5)),
    "preview": ScoreSettings(
        (hgb(0.1, 15),), StudentSettings(hidden=8, epochs=15, budget_s=5), latency_runs=50
    ),
    "full": ScoreSettings(
        (hgb(0.05, 15), hgb(0.05, 31), hgb(0.1, 15), hgb(0.05, 15, 50, 1.0), hgb(0.1, 7)),
        StudentSettings(hidden=16, budget_s=30),
    ),
}
BUDGET = {"preview": "15 s wall", "full": "1 min wall"}


def load_risk_data(opts: ExportOptions) -> tuple[ScoreData, CleaningReport]:
    """Stratified 70/15/15 split; --quick keeps 3000 training rows. Preprocessing fits on train."""
    from sklearn.model_selection import train_test_split

    df, rep = load_shoppers()
    y = df["Revenue"].astype(int).to_numpy()
    idx = np.arange(len(df))
    tr, rest = train_test_split(idx, test_size=0.3, stratify=y, random_state=opts.seed)
    va, te = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=opts.seed)
    if opts.quick:
        tr = tr[:3000]
    pre = fit_preprocessing(df.iloc[tr], NUMERIC, LOG1P, CATEGORICAL)
    split = [RiskSplit(*transform(df.iloc[i], pre), y[i]) for i in (tr, va, te)]
    return ScoreData(*split, pre=pre), rep


def _card(
    opts: ExportOptions, data: ScoreData, rep: CleaningReport, built: Built, clock: Clock
) -> Card:
    split = (
        f"stratified 70/15/15 train/valid/test, seed {opts.seed}: train {len(data.train)}, "
        f"valid {len(data.valid)}, test {len(data.test)} sessions (test scored once, for this "
        "table; every choice on valid)"
    )
    return Card(
        MODEL_NAME,
        "purchase-intent score per session (binary: Revenue); /v1/score task purchase_intent",
        {
            "name": "Online Shoppers Purchasing Intention (UCI 468)",
            "rows": rep.rows_out,
            "split": split + ("; --quick: 3000 training rows" if opts.quick else ""),
        },
        METRIC,
        built.rows,
        built.gate,
        extra={
            "metric_note": "ROC-AUC primary: 15% of sessions buy, and a score is used over its "
            "whole range; PR-AUC reported beside it",
            "cleaning": rep.to_dict(),
            "export_check": built.exported.check.to_dict(),
            "contract": spec_summary(RISK),
            **built.extra,
            "budget": {
                "tier": "quick" if opts.quick else opts.tier,
                "wall": BUDGET.get("quick" if opts.quick else opts.tier, "-"),
                "spent_until_card": clock.spent(),
                "bought": f"{len(data.train)} training sessions, teacher grid of "
                f"{len(built.extra['teacher_grid'])}, student "
                f"{built.extra['student_training']['epochs']} epochs",
            },
            "quantization": "not applied: the additive student has no MatMul/Gemm",
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )


def export_risk(opts: ExportOptions) -> None:
    clock = Clock()
    seed_everything(opts.seed)
    data, rep = load_risk_data(opts)
    settings = TIERS["quick" if opts.quick else opts.tier]
    folder = ModelFolder(opts.out, MODEL_NAME)
    built = build_score_models(opts, data, RISK, METRIC, settings, folder.version / "model.onnx")
    score = ScoreSpec(model=RISK.name, threshold=built.threshold)
    pre = msgspec.structs.replace(data.pre, bias=built.bias)
    (folder.version / score.preprocess).write_bytes(msgspec.json.encode(pre))
    folder.write_config(RISK.config({"variant": "student", "threshold_rule": THRESHOLD_RULE}))
    finish(opts, folder, _card(opts, data, rep, built, clock))  # raises on a failed gate
    pipeline = ModelFolder(opts.out, PIPELINE_NAME)
    pipeline.write_pipeline(score)
    pipeline.publish()
