"""What the additive score families (risk, cancellation_risk) share, from split data to the gate.

Rows: logistic regression (baseline, C chosen on validation), gradient-boosted trees (teacher,
export/tree_teacher.py, timed in ONNX Runtime like the student), and the additive student
(export/risk_models.py): one small network per numeric feature and one learned value per category,
summed into the logit, so each feature's contribution is exact (`contributions` output; logit =
bias + sum). Every choice is made on the validation split (the baseline's C, the teacher's setting
and early stopping, the student's early stopping, the decision threshold); the test split is
scored once, for the card's rows. int8 is not applied: the student is elementwise per-feature
arithmetic with no MatMul/Gemm to quantize.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export import onnx_tools
from export.card import Row, check_gates
from export.risk_models import RiskSplit, StudentSettings
from export.training import param_count
from server.contract.pipelines import ScorePreprocessing

if TYPE_CHECKING:
    import pandas as pd

    from export.options import ExportOptions
    from export.specs import OnnxSpec
    from export.tree_teacher import Teacher

__all__ = [
    "Clock",
    "LATENCY_BATCHES",
    "hgb",
    "THRESHOLD_RULE",
    "Built",
    "ScoreData",
    "ScoreSettings",
    "build_score_models",
    "fit_preprocessing",
    "metric_fn",
    "transform",
]

LATENCY_BATCHES = (1, 64)
THRESHOLD_RULE = "max F1 of the student's probability on the validation split"
BASELINE_C = (0.01, 0.1, 1.0, 10.0)


@dataclass
class Clock:
    """A family's time so far, wall and CPU (a loaded shared machine stretches the first)."""

    wall0: float = field(default_factory=time.perf_counter)
    cpu0: float = field(default_factory=time.process_time)

    def spent(self) -> dict[str, float]:
        return {
            "wall_s": round(time.perf_counter() - self.wall0, 1),
            "cpu_s": round(time.process_time() - self.cpu0, 1),
        }


def hgb(rate: float, leaves: int, min_leaf: int = 20, l2: float = 0.0) -> dict:
    """One teacher setting (HistGradientBoostingClassifier's keywords)."""
    return {
        "learning_rate": rate,
        "max_leaf_nodes": leaves,
        "min_samples_leaf": min_leaf,
        "l2_regularization": l2,
    }


@dataclass(frozen=True)
class ScoreSettings:
    """A tier's training: the teacher's grid (HistGradientBoosting settings) and the student."""

    teacher_grid: tuple[dict, ...]
    student: StudentSettings
    latency_runs: int = 200


# -- preprocessing -------------------------------------------------------------------------------


def fit_preprocessing(
    train: pd.DataFrame, numeric: list[str], log1p: list[str], categorical: list[str]
) -> ScorePreprocessing:
    """Standardisation and vocabularies fitted on the training rows (bias set after training)."""
    num = train[numeric].astype(np.float64).copy()
    for c in log1p:
        num[c] = np.log1p(num[c].clip(lower=0))
    return ScorePreprocessing(
        numeric=numeric,
        log1p=log1p,
        mean=num.mean().round(6).tolist(),
        std=num.std().replace(0, 1).fillna(1).round(6).tolist(),
        categorical=categorical,
        vocab={c: ["<unk>"] + sorted(train[c].astype(str).unique().tolist()) for c in categorical},
        bias=0.0,
        contributions=numeric + categorical,
    )


def transform(df: pd.DataFrame, p: ScorePreprocessing) -> tuple[np.ndarray, np.ndarray]:
    """Rows -> (numeric float32, categorical int64), as the score pipelines compute them."""
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
class ScoreData:
    train: RiskSplit
    valid: RiskSplit
    test: RiskSplit
    pre: ScorePreprocessing

    def feeds(self, split: RiskSplit) -> dict[str, np.ndarray]:
        return {"numeric": split.num, "categorical": split.cat}


# -- metrics -------------------------------------------------------------------------------------


def metric_fn(name: str):
    """(labels, probabilities) -> the metric `name`: roc_auc or pr_auc (average precision)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"roc_auc": roc_auc_score, "pr_auc": average_precision_score}[name]


def _metrics(prob: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {k: round(float(metric_fn(k)(y, prob)), 4) for k in ("roc_auc", "pr_auc")}


# -- baseline ------------------------------------------------------------------------------------


def _one_hot(enc, split: RiskSplit) -> np.ndarray:
    return np.hstack([split.num, enc.transform(split.cat).toarray()])


def baseline_row(data: ScoreData, metric: str) -> Row:
    """Logistic regression on standardised numerics + one-hot categories, C chosen on valid."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    enc = OneHotEncoder(handle_unknown="ignore").fit(data.train.cat)
    x_train, x_valid = _one_hot(enc, data.train), _one_hot(enc, data.valid)
    best = None
    for c in BASELINE_C:
        lr = LogisticRegression(max_iter=2000, C=c).fit(x_train, data.train.y)
        score = float(metric_fn(metric)(data.valid.y, lr.predict_proba(x_valid)[:, 1]))
        if best is None or score > best[0]:
            best = (score, c, lr)
    valid_score, c, lr = best  # type: ignore[misc]
    m = _metrics(lr.predict_proba(_one_hot(enc, data.test))[:, 1], data.test.y)
    return Row(
        "baseline",
        m[metric],
        m,
        params=int(lr.coef_.size + 1),
        valid_metric=round(valid_score, 4),
        note=f"C={c} (best of {list(BASELINE_C)} on validation)",
        runtime="sklearn",  # not timed: no latency row
    )


# -- teacher -------------------------------------------------------------------------------------


def teacher_row(teacher: Teacher, data: ScoreData, metric: str, path: Path, runs: int) -> Row:
    """The teacher on test, timed in ONNX Runtime (skl2onnx), or in sklearn when skl2onnx cannot
    convert it (the row's `runtime` says which; the speed rule then compares nothing)."""
    from export.tree_teacher import features, teacher_onnx

    te = data.test
    m = _metrics(teacher.prob(te), te.y)
    base = dict(params=teacher.nodes, valid_metric=round(teacher.valid_metric, 4))
    setting = ", ".join(f"{k} {v}" for k, v in teacher.setting.items())
    try:
        teacher_onnx(teacher, te.num.shape[1], te.cat.shape[1], path)
    except Exception as exc:  # skl2onnx raises many types for what it cannot convert
        latency = {
            f"batch_{b}": onnx_tools.measure_latency_ms(
                partial(teacher.model.predict_proba, features(te)[:b]), runs=runs
            )
            for b in LATENCY_BATCHES
        }
        note = f"{setting}; skl2onnx failed ({type(exc).__name__}): timed in sklearn"
        return Row(
            "teacher", m[metric], m, **base, latency_ms=latency, note=note, runtime="sklearn"
        )
    sess = onnx_tools.session(path)
    got = onnx_tools.run_session(sess, data.feeds(te))[1][:, 1]
    if np.max(np.abs(got - teacher.prob(te))) > 1e-4:
        raise RuntimeError("teacher: skl2onnx output differs from sklearn")
    feeds = onnx_tools.head_feeds(data.feeds(te), LATENCY_BATCHES)
    return Row(
        "teacher",
        m[metric],
        m,
        **base,
        size_bytes=path.stat().st_size,
        latency_ms=onnx_tools.latency_by_batch(sess, feeds, runs),
        note=f"HistGradientBoosting ({setting}); params = tree nodes; ONNX Runtime CPU, 1 thread",
    )


# -- student -------------------------------------------------------------------------------------


@dataclass
class Exported:
    row: Row
    check: onnx_tools.ExportCheck
    outputs: list[np.ndarray]  # ONNX outputs on the test split


def export_student(
    student, spec: OnnxSpec, data: ScoreData, metric: str, path: Path, runs: int
) -> Exported:
    """torch -> ONNX at `path`, checked against torch on the test split, measured."""
    import torch

    from export.risk_models import outputs, probability

    te = data.test
    spec.export(student, (torch.tensor(te.num[:4]), torch.tensor(te.cat[:4])), path)
    sess = onnx_tools.session(path)
    got = onnx_tools.run_session(sess, data.feeds(te))
    check = spec.check(outputs(student, te), got)
    if not check.passed:
        raise RuntimeError(f"{spec.name}: ONNX output differs from torch: {check}")
    m = _metrics(got[0][:, 0], te.y)
    valid = float(metric_fn(metric)(data.valid.y, probability(student, data.valid)))
    feeds = onnx_tools.head_feeds(data.feeds(te), LATENCY_BATCHES)
    row = Row(
        "student",
        m[metric],
        m,
        params=param_count(student),
        size_bytes=path.stat().st_size,
        latency_ms=onnx_tools.latency_by_batch(sess, feeds, runs),
        valid_metric=round(valid, 4),
        note="ONNX Runtime CPU, 1 thread",
    )
    return Exported(row, check, got)


def _paired_speedup(teacher: Path, student: Path, data: ScoreData) -> dict[str, float]:
    """Student against teacher at batch 64 in interleaved rounds (`onnx_tools.paired_speedup`),
    both ONNX Runtime sessions on one thread, on the test split's first 64 rows."""
    feeds = onnx_tools.head_feeds(data.feeds(data.test), (64,))[64]
    t, s = onnx_tools.session(teacher), onnx_tools.session(student)
    return onnx_tools.paired_speedup(partial(t.run, None, feeds), partial(s.run, None, feeds))


def choose_threshold(student, valid: RiskSplit) -> float:
    """The F1-best cut of the student's probability on the validation split."""
    from sklearn.metrics import precision_recall_curve

    from export.risk_models import probability

    pv = np.round(probability(student, valid), 3)
    precision, recall, cuts = precision_recall_curve(valid.y, pv)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return round(float(cuts[int(np.argmax(f1[:-1]))]), 3)


def _at_threshold(prob: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import f1_score, precision_score, recall_score

    pred = prob >= threshold
    return {
        "f1": round(float(f1_score(y, pred)), 4),
        "precision": round(float(precision_score(y, pred, zero_division=0)), 4),
        "recall": round(float(recall_score(y, pred)), 4),
        "flagged_share": round(float(pred.mean()), 4),
    }


# -- the whole family ------------------------------------------------------------------------------


@dataclass
class Built:
    rows: list[Row]
    gate: dict
    exported: Exported
    bias: float
    threshold: float
    extra: dict = field(default_factory=dict)


def build_score_models(
    opts: ExportOptions,
    data: ScoreData,
    spec: OnnxSpec,
    metric: str,
    settings: ScoreSettings,
    model_path: Path,
) -> Built:
    """Baseline, teacher and student rows; the student exported to `model_path`; the threshold,
    the additivity check and the gate (speed compared in ONNX Runtime when the teacher converts)."""
    from threadpoolctl import threadpool_limits

    # one OpenMP/BLAS thread: on this shared 2-core machine a second one mostly spins (measured:
    # a HistGradientBoosting fit took 31 CPU s with two threads, 4 with one)
    with threadpool_limits(1):
        return _build(opts, data, spec, metric, settings, model_path)


def _build(
    opts: ExportOptions,
    data: ScoreData,
    spec: OnnxSpec,
    metric: str,
    settings: ScoreSettings,
    model_path: Path,
) -> Built:
    from export.risk_models import train_student
    from export.tree_teacher import train_teacher

    tag = f"[{spec.name}]"
    runs = 20 if opts.quick else settings.latency_runs
    rows = [baseline_row(data, metric)]
    opts.log(f"{tag} teacher: gradient-boosted trees, {len(settings.teacher_grid)} setting(s)")
    teacher = train_teacher(
        data.train, data.valid, settings.teacher_grid, metric_fn(metric), seed=opts.seed
    )
    rows.append(teacher_row(teacher, data, metric, opts.cache / f"{spec.name}_teacher.onnx", runs))
    opts.log(f"{tag} student: additive model distilled from the teacher")
    student, fit = train_student(
        data.train,
        data.valid,
        teacher.prob(data.train),
        [len(data.pre.vocab[c]) for c in data.pre.categorical],
        metric=metric_fn(metric),
        settings=settings.student,
        seed=opts.seed,
        desc=f"{spec.name} student",
    )
    exported = export_student(student, spec, data, metric, model_path, runs)
    rows.append(exported.row)
    bias = float(student.bias.detach())
    threshold = choose_threshold(student, data.valid)
    same_runtime = rows[1].runtime == exported.row.runtime
    teacher_path = opts.cache / f"{spec.name}_teacher.onnx"
    gate = check_gates(
        rows,
        served="student",
        speed_batch="batch_64" if same_runtime else None,
        quick=opts.quick,
        tier=opts.tier,
        paired_speedup=_paired_speedup(teacher_path, model_path, data) if same_runtime else None,
    )
    _, logit, contributions = exported.outputs
    extra = {
        "teacher_grid": teacher.tried,
        "teacher_setting": teacher.setting,
        "student_training": {
            "epochs": fit.epochs,
            "seconds": fit.seconds,
            "best_valid": round(fit.best_score, 4),
        },
        "additivity_max_abs": float(np.max(np.abs(contributions.sum(1) + bias - logit[:, 0]))),
        "threshold": threshold,
        "threshold_rule": THRESHOLD_RULE,
        "test_at_threshold": _at_threshold(exported.outputs[0][:, 0], data.test.y, threshold),
        "speed_note": "teacher (skl2onnx) and student both timed in ONNX Runtime, 1 thread"
        if same_runtime
        else "no speed rule: the teacher could not be converted to ONNX (timed in sklearn)",
    }
    if rows[1].metric < exported.row.metric:
        extra["teacher_note"] = (
            "the student scores above its teacher on test; on validation the teacher "
            f"{rows[1].valid_metric} vs student {exported.row.valid_metric}: the teacher's "
            "setting and iterations were chosen on validation and not tuned further on test"
        )
    return Built(rows, gate, exported, bias, threshold, extra)
