"""One evaluation window of the forecast family, end to end, honestly:

1. choices on the window's validation weeks (the 28 days before it), by models trained on targets
   before them: the teacher's number of trees (each quantile), the student's epochs, and (by
   `served_variant` on the validation WAPE) int8 or fp32;
2. the same recipe refit on every target before the window (what the card evaluates and serves);
3. the window's test metrics for the baselines, the teacher, and the student's ONNX fp32 and int8
   files, each from the origin the day before the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export import onnx_tools
from export.forecast_data import HORIZON, DemandTable
from export.forecast_features import Samples, origins_before, window_samples
from export.forecast_metrics import apply_closed, mase_scale, open_days, window_metrics
from export.forecast_models import (
    StudentConfig,
    TeacherConfig,
    fit_student,
    fit_teacher,
    moving_average,
    seasonal_naive,
    student_predict,
)
from export.specs import OnnxSpec, TensorSpec
from kernels.history import ORIGIN_FEATURES

__all__ = ["FORECAST", "Fitted", "Window", "fit_recipe", "onnx_files", "run_window"]

FORECAST = OnnxSpec(
    name="forecast_model",
    inputs=(
        TensorSpec("features", "TYPE_FP32", (len(ORIGIN_FEATURES),)),
        TensorSpec("scale", "TYPE_FP32", (1,)),
    ),
    outputs=(
        TensorSpec("p50", "TYPE_FP32", (HORIZON,)),
        TensorSpec("p90", "TYPE_FP32", (HORIZON,)),
    ),
    max_batch_size=64,
    preferred_batch_size=(1, 8, 64),
    atol=1e-2,
)


@dataclass
class Fitted:
    teacher: object
    student: object
    info: dict


@dataclass
class Window:
    name: str
    start: int  # the first test column
    metrics: dict[str, dict[str, float]]  # variant -> test metrics
    valid: dict[str, dict[str, float]]  # variant -> validation metrics (phase 1)
    choices: dict
    items: int  # eligible items (the test set)
    fallback_items: int
    fitted: Fitted | None = None
    files: dict[str, Path] = field(default_factory=dict)
    check: dict = field(default_factory=dict)


def onnx_files(student, example: Samples, work: Path) -> tuple[dict[str, Path], dict]:
    """The student as ONNX fp32 and dynamic int8 (per-channel Gemm/MatMul), checked against torch."""
    import torch

    feeds = (torch.from_numpy(example.x[:64]), torch.from_numpy(example.scale[:64, None]))
    fp32 = FORECAST.export(student, feeds, work / "student.onnx")
    ref = list(student_predict(student, example))
    got = onnx_run(fp32, example)
    check = FORECAST.check(ref, list(got))
    if not check.passed:
        raise RuntimeError(f"forecast student: ONNX output differs from torch: {check}")
    int8 = onnx_tools.quantize_dynamic_int8(fp32, work / "student-int8.onnx")
    return {"student": fp32, "student-int8": int8}, check.to_dict()


def onnx_run(path: Path, s: Samples) -> tuple[np.ndarray, np.ndarray]:
    sess = onnx_tools.session(path)
    feeds = {"features": s.x, "scale": s.scale[:, None].astype(np.float32)}
    a, b = onnx_tools.run_session(sess, feeds, batch=4096)
    return a, b


def fit_recipe(
    t: DemandTable,
    cutoff: int,
    cfgs: tuple[TeacherConfig, StudentConfig],
    seed: int,
    first_sale: np.ndarray,
    choices: dict | None = None,
) -> Fitted:
    """Teacher and student on targets before `cutoff`. Without `choices`, `cutoff` starts a
    validation window: the teacher's trees and the student's epochs are chosen on its 28 days
    (from the origin `cutoff - 1`); with `choices`, they are taken as given."""
    tc, sc = cfgs
    rng = np.random.default_rng(seed)
    train = origins_before(t, cutoff, sc.samples, rng, first_sale)
    if choices is None:
        vs = window_samples(t, cutoff, first_sale)
        teacher = fit_teacher(t, train, tc, seed, valid=vs)
        student, info = fit_student(train, teacher.predict(t, train), sc, seed, valid=vs)
    else:
        teacher = fit_teacher(t, train, tc, seed, iters=choices["teacher_trees"])
        tq = teacher.predict(t, train)
        student, info = fit_student(train, tq, sc, seed, epochs=choices["student_epochs"])
    info = {"teacher_trees": teacher.iters, "student_epochs": info["epochs"], **info}  # type: ignore[attr-defined]
    info["teacher_s"] = teacher.seconds  # type: ignore[attr-defined]
    return Fitted(teacher, student, info)


def _predictions(t, s: Samples, closed, fitted: Fitted, files: dict[str, Path]) -> dict:
    open_ = open_days(closed, int(s.origins[0]))
    out = {
        "seasonal naive": seasonal_naive(t, s),
        "moving average": moving_average(t, s, closed),
        "teacher": fitted.teacher.predict(t, s),  # type: ignore[attr-defined]
    }
    for v, path in files.items():
        out[v] = onnx_run(path, s)
    return {k: apply_closed(q, open_) for k, q in out.items()}


def _score(t, s: Samples, closed, fitted, files, first_sale) -> dict[str, dict[str, float]]:
    assert s.y is not None
    open_ = open_days(closed, int(s.origins[0]))
    scale = mase_scale(t, s, first_sale)
    preds = _predictions(t, s, closed, fitted, files)
    return {k: window_metrics(s.y, q, open_, scale) for k, q in preds.items()}


def run_window(
    t: DemandTable,
    name: str,
    start: int,
    closed: np.ndarray,
    cfgs: tuple[TeacherConfig, StudentConfig],
    seed: int,
    work: Path,
    log,
) -> Window:
    """Choose on the validation weeks, refit up to `start`, score the 28 days from `start`."""
    first_sale = t.first_sale()
    valid_start = start - HORIZON
    log(f"[forecast] {name}: choosing on {t.date(valid_start)} .. {t.date(start - 1)}")
    chosen = fit_recipe(t, valid_start, cfgs, seed, first_sale)
    vs = window_samples(t, valid_start, first_sale)
    v_files, _ = onnx_files(chosen.student, vs, work / name / "choose")
    valid = _score(t, vs, closed, chosen, v_files, first_sale)
    choices = {k: chosen.info[k] for k in ("teacher_trees", "student_epochs")}
    log(f"[forecast] {name}: refit up to {t.date(start - 1)} with {choices}")
    fitted = fit_recipe(t, start, cfgs, seed + 1, first_sale, choices)
    ts = window_samples(t, start, first_sale)
    files, check = onnx_files(fitted.student, ts, work / name / "final")
    test = _score(t, ts, closed, fitted, files, first_sale)
    origin = start - 1
    fallback = int(((first_sale > origin - 28) & (first_sale <= origin)).sum())
    choices["phase1"] = chosen.info
    choices["phase2"] = fitted.info
    return Window(name, start, test, valid, choices, len(ts), fallback, fitted, files, check)
