"""Risk / purchase-intent score on Online Shoppers Intention (label `Revenue`).

Rows: logistic regression (baseline), gradient-boosted trees (teacher, the strongest model that
trains here in seconds), and an additive student distilled from it: one small network per numeric
feature and one learned value per category, summed into the logit, so each feature's contribution
is exact (`contributions` output; logit = bias + sum). int8 is not applied: the student is
elementwise per-feature arithmetic with no MatMul/Gemm to quantize.

Published: the `risk` model (with `1/preprocess.json`, a `ScorePreprocessing`) and the `score`
pipeline folder (`ScoreSpec`: the model and the decision threshold chosen on validation).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from export import onnx_tools
from export.card import Card, Row, check_gates, spec_summary
from export.data import load_shoppers
from export.options import ExportOptions, finish
from export.repository import ModelFolder
from export.specs import OnnxSpec, TensorSpec
from export.training import param_count, seed_everything
from server.contract.pipelines import ScorePreprocessing, ScoreSpec

if TYPE_CHECKING:
    from export.risk_models import RiskSplit

__all__ = ["MODEL_NAME", "PIPELINE_NAME", "RISK", "export_risk", "preprocess_params", "transform"]

MODEL_NAME = "risk"
PIPELINE_NAME = "score"
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
LATENCY_BATCHES = (1, 64)
THRESHOLD_RULE = "max F1 on the validation split"


# -- data ------------------------------------------------------------------------------------


def preprocess_params(train) -> ScorePreprocessing:
    """Standardisation and vocabularies fitted on the training rows (bias is set after training)."""
    num = train[NUMERIC].astype(np.float64).copy()
    for c in LOG1P:
        num[c] = np.log1p(num[c].clip(lower=0))
    return ScorePreprocessing(
        numeric=NUMERIC,
        log1p=LOG1P,
        mean=num.mean().round(6).tolist(),
        std=num.std().replace(0, 1).round(6).tolist(),
        categorical=CATEGORICAL,
        vocab={c: ["<unk>"] + sorted(train[c].astype(str).unique().tolist()) for c in CATEGORICAL},
        bias=0.0,
        contributions=NUMERIC + CATEGORICAL,
    )


def transform(df, p: ScorePreprocessing) -> tuple[np.ndarray, np.ndarray]:
    """Sessions -> (numeric float32, categorical int64), as the score pipeline computes them."""
    num = df[p.numeric].astype(np.float64).copy()
    for c in p.log1p:
        num[c] = np.log1p(num[c].clip(lower=0))
    x = ((num.to_numpy() - np.array(p.mean)) / np.array(p.std)).astype(np.float32)
    cat = np.stack(
        [
            df[c].astype(str).map({v: i for i, v in enumerate(p.vocab[c])}).fillna(0).to_numpy()
            for c in p.categorical
        ],
        axis=1,
    ).astype(np.int64)
    return x, cat


@dataclass
class RiskData:
    train: RiskSplit
    valid: RiskSplit
    test: RiskSplit
    pre: ScorePreprocessing
    rows: int
    cleaning: dict = field(default_factory=dict)

    def feeds(self, split: RiskSplit) -> dict[str, np.ndarray]:
        return dict(zip(RISK.input_names, (split.num, split.cat), strict=True))


def load_risk_data(opts: ExportOptions) -> RiskData:
    """Stratified 70/15/15 split; --quick keeps 3000 training rows. Preprocessing fits on train."""
    from sklearn.model_selection import train_test_split

    from export.risk_models import RiskSplit

    df, rep = load_shoppers()
    y = df["Revenue"].astype(int).to_numpy()
    idx = np.arange(len(df))
    tr, rest = train_test_split(idx, test_size=0.3, stratify=y, random_state=opts.seed)
    va, te = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=opts.seed)
    if opts.quick:
        tr = tr[:3000]
    pre = preprocess_params(df.iloc[tr])
    split = [RiskSplit(*transform(df.iloc[i], pre), y[i]) for i in (tr, va, te)]
    return RiskData(*split, pre=pre, rows=rep.rows_out, cleaning=rep.to_dict())


def _metrics(prob: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {
        "roc_auc": round(float(roc_auc_score(y, prob)), 4),
        "pr_auc": round(float(average_precision_score(y, prob)), 4),
    }


# -- baseline and teacher (sklearn) ------------------------------------------------------------


def _one_hot(enc, split: RiskSplit) -> np.ndarray:
    return np.hstack([split.num, enc.transform(split.cat).toarray()])


def baseline_row(data: RiskData) -> Row:
    """Logistic regression on standardised numerics + one-hot categories."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    enc = OneHotEncoder(handle_unknown="ignore").fit(data.train.cat)
    lr = LogisticRegression(max_iter=2000, C=1.0).fit(_one_hot(enc, data.train), data.train.y)
    m = _metrics(lr.predict_proba(_one_hot(enc, data.test))[:, 1], data.test.y)
    return Row("baseline", m["roc_auc"], m, params=int(lr.coef_.size + 1))


def train_teacher(data: RiskData, opts: ExportOptions):
    """Gradient-boosted trees, the best of a small grid on validation AUC (early stopping inside)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    tr = data.train
    cat_mask = [False] * tr.num.shape[1] + [True] * tr.cat.shape[1]
    grid = ((0.1, 15),) if opts.quick else ((0.05, 15), (0.05, 31), (0.1, 15))
    best = None
    for lr_rate, leaves in grid:
        gbt = HistGradientBoostingClassifier(
            learning_rate=lr_rate,
            max_leaf_nodes=leaves,
            max_iter=400,
            categorical_features=cat_mask,
            early_stopping=True,
            validation_fraction=0.15,
            random_state=opts.seed,
        )
        gbt.fit(np.hstack([tr.num, tr.cat]), tr.y)
        auc = roc_auc_score(data.valid.y, teacher_prob(gbt, data.valid.num, data.valid.cat))
        if best is None or auc > best[0]:
            best = (auc, gbt)
    return best[1]


def teacher_prob(gbt, num: np.ndarray, cat: np.ndarray) -> np.ndarray:
    return gbt.predict_proba(np.hstack([num, cat]))[:, 1]


def teacher_row(gbt, data: RiskData, runs: int) -> Row:
    te = data.test
    m = _metrics(teacher_prob(gbt, te.num, te.cat), te.y)
    latency = {
        f"batch_{b}": onnx_tools.measure_latency_ms(
            partial(teacher_prob, gbt, te.num[:b], te.cat[:b]), runs=runs
        )
        for b in LATENCY_BATCHES
    }
    return Row(
        "teacher",
        m["roc_auc"],
        m,
        params=int(sum(len(t[0].nodes) for t in gbt._predictors)),
        latency_ms=latency,
        note="sklearn HistGradientBoosting; params = tree nodes; latency in sklearn",
    )


# -- student: export, check, threshold ---------------------------------------------------------


@dataclass
class Exported:
    row: Row
    check: onnx_tools.ExportCheck
    outputs: list[np.ndarray]  # ONNX outputs on the test split


def export_student(student, data: RiskData, path: Path, runs: int) -> Exported:
    """torch -> ONNX at `path`, checked against torch on the test split, measured."""
    import torch

    from export.risk_models import outputs

    te = data.test
    RISK.export(student, (torch.tensor(te.num[:4]), torch.tensor(te.cat[:4])), path)
    sess = onnx_tools.session(path)
    got = onnx_tools.run_session(sess, data.feeds(te))
    check = RISK.check(outputs(student, te), got)
    if not check.passed:
        raise RuntimeError(f"{RISK.name}: ONNX output differs from torch: {check}")
    m = _metrics(got[0][:, 0], te.y)
    feeds = onnx_tools.head_feeds(data.feeds(te), LATENCY_BATCHES)
    row = Row(
        "student",
        m["roc_auc"],
        m,
        params=param_count(student),
        size_bytes=path.stat().st_size,
        latency_ms=onnx_tools.latency_by_batch(sess, feeds, runs),
        note="ONNX Runtime CPU, 1 thread",
    )
    return Exported(row, check, got)


def additivity_error(exported: Exported, bias: float) -> float:
    """Max |bias + sum(contributions) - logit| over the test split (the contributions are exact)."""
    _, logit, contributions = exported.outputs
    return float(np.max(np.abs(contributions.sum(1) + bias - logit[:, 0])))


def choose_threshold(student, valid) -> float:
    """The F1-best cut of the student's probability on the validation split."""
    from sklearn.metrics import f1_score

    from export.risk_models import probability

    pv = probability(student, valid)
    cands = np.unique(np.round(pv, 3))
    f1s = [f1_score(valid.y, pv >= c) for c in cands]
    return round(float(cands[int(np.argmax(f1s))]), 3)


def _test_f1(exported: Exported, y: np.ndarray, threshold: float) -> float:
    from sklearn.metrics import f1_score

    return round(float(f1_score(y, exported.outputs[0][:, 0] >= threshold)), 4)


# -- the repository ------------------------------------------------------------------------------


def _card(opts, data: RiskData, rows: list[Row], exported: Exported, extra: dict) -> Card:
    gate = check_gates(
        rows, served="student", speed_batch="batch_64", min_speedup=1.0, quick=opts.quick
    )
    split = f"stratified 70/15/15 train/valid/test, seed {opts.seed}; test {len(data.test)} rows"
    return Card(
        MODEL_NAME,
        "purchase-intent / risk score per session (binary: Revenue)",
        {
            "name": "Online Shoppers Purchasing Intention (UCI 468)",
            "rows": data.rows,
            "split": split + ("; --quick: 3000 training rows" if opts.quick else ""),
        },
        "roc_auc",
        rows,
        gate,
        extra={
            "cleaning": data.cleaning,
            "export_check": exported.check.to_dict(),
            "contract": spec_summary(RISK),
            **extra,
            "quantization": "not applied: the additive student has no MatMul/Gemm; int8 gains nothing",
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )


def _write_score_pipeline(opts: ExportOptions, spec: ScoreSpec) -> None:
    folder = ModelFolder(opts.out, PIPELINE_NAME)
    folder.write_pipeline(spec)
    folder.publish()


def export_risk(opts: ExportOptions) -> None:
    from export.risk_models import train_student

    seed_everything(opts.seed)
    data = load_risk_data(opts)
    runs = 20 if opts.quick else 200
    rows = [baseline_row(data)]

    opts.log("[risk] teacher: gradient-boosted trees")
    gbt = train_teacher(data, opts)
    rows.append(teacher_row(gbt, data, runs))

    opts.log("[risk] student: additive model distilled from the teacher")
    vocab_sizes = [len(data.pre.vocab[c]) for c in CATEGORICAL]
    soft = teacher_prob(gbt, data.train.num, data.train.cat)
    student = train_student(
        data.train, data.valid, soft, vocab_sizes, quick=opts.quick, seed=opts.seed
    )

    folder = ModelFolder(opts.out, MODEL_NAME)
    exported = export_student(student, data, folder.version / "model.onnx", runs)
    rows.append(exported.row)
    bias = float(student.bias.detach())
    score = ScoreSpec(model=RISK.name, threshold=choose_threshold(student, data.valid))
    pre = msgspec.structs.replace(data.pre, bias=bias)
    (folder.version / score.preprocess).write_bytes(msgspec.json.encode(pre))
    folder.write_config(RISK.config({"variant": "student", "threshold_rule": THRESHOLD_RULE}))
    extra = {
        "additivity_max_abs": additivity_error(exported, bias),
        "threshold": score.threshold,
        "threshold_rule": THRESHOLD_RULE,
        "test_f1_at_threshold": _test_f1(exported, data.test.y, score.threshold),
    }
    finish(opts, folder, _card(opts, data, rows, exported, extra))  # raises on a failed gate
    _write_score_pipeline(opts, score)
