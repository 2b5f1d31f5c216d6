"""The review classifiers `classify_<task>` (input_ids -> logits) and the `classify` pipeline that
serves the published ones: rows baseline, teacher, student, student-int8; macro-F1.

Every choice is made on validation: the int8 mode of each head, and the served variant
(`served_variant` on `valid_metric`); test is read once, for the rows. The rows come from the
student graph with every head (one pass per variant); each served file is checked against it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from export.card import Card, Row, check_gates, served_variant
from export.repository import ModelFolder
from export.specs import OnnxSpec
from export.text_data import INPUT_IDS
from export.text_metrics import macro_f1
from export.text_models import HeadOnly
from export.text_onnx import INT8_MODES, Exported, Graph, TextRun, logits
from export.training import param_count
from server.contract.pipelines import ClassifyHead, ClassifySpec

__all__ = [
    "CLASSIFY",
    "PIPELINE",
    "choose_int8_mode",
    "classifier_spec",
    "export_classifier",
    "write_classify_pipeline",
]

PIPELINE = "classify"
# every head's contract; `classifier_spec` names it and sizes `logits` to the task's labels
CLASSIFY = OnnxSpec(
    name="classify_task",
    inputs=(INPUT_IDS,),
    outputs=(logits("logits", 2),),
    max_batch_size=64,
    # a batch of long reviews takes tens of ms on a busy 2-core CPU: the model's own deadline
    # is generous, and /v1 budgets (100 ms for classify) shorten it per request
    default_timeout_us=1_000_000,
    preferred_batch_size=(8, 32),
    warmup_dynamic_dim=32,
)


def classifier_spec(task: str, n_labels: int) -> OnnxSpec:
    (out,) = CLASSIFY.outputs
    return replace(CLASSIFY, name=f"classify_{task}", outputs=(replace(out, dims=(n_labels,)),))


def choose_int8_mode(graphs: dict[str, Graph], y_valid: np.ndarray, task: str) -> str:
    """The int8 mode of best validation macro-F1 (the first on a tie); never reads test."""
    f1 = {m: macro_f1(y_valid, graphs[m].valid[task].argmax(1))["macro_f1"] for m in INT8_MODES}
    return max(f1, key=lambda m: f1[m])


def _teacher_row(run: TextRun, task: str) -> Row:
    fit = run.models.teacher_fits[task]
    m = macro_f1(run.data.y(task, "test"), run.models.teacher_test[task].argmax(1))
    return Row(
        "teacher",
        m["macro_f1"],
        m,
        params=param_count(run.teacher.bert) + param_count(run.teacher.heads[task]),
        size_bytes=run.teacher_size,
        latency_ms=run.teacher_latency,
        note="MiniLM-L6 (frozen) + lexical bag + linear head",
        valid_metric=fit.valid_f1,
    )


def _graph_row(run: TextRun, variant: str, task: str, graph: Graph, served: Exported) -> Row:
    """A student variant's row: its graph's test macro-F1, the served file's size and latency."""
    y_va, y_te = run.data.y(task, "valid"), run.data.y(task, "test")
    m = macro_f1(y_te, graph.test[task].argmax(1))
    if variant != "student":
        fp32 = run.graphs["student"].test[task].argmax(1)
        m["agreement_with_fp32"] = round(float((graph.test[task].argmax(1) == fp32).mean()), 4)
    return Row(
        variant,
        m["macro_f1"],
        m,
        params=param_count(run.student.bert) + param_count(run.student.heads[task]),
        size_bytes=served.size_bytes,
        latency_ms=run.bench.latency(served.sess),
        note=f"dynamic {graph.path.stem.split('_', 1)[1].replace('_', ' ')} MatMul weights"
        if variant != "student"
        else "",
        valid_metric=macro_f1(y_va, graph.valid[task].argmax(1))["macro_f1"],
    )


def _served_files(run: TextRun, task: str, spec: OnnxSpec, mode: str):
    """The head's own ONNX files (fp32, int8 in `mode`), each checked against torch and against
    the graph the rows come from, on the plan's `check_reviews` test reviews."""
    import torch

    ids = run.check_ids
    module = HeadOnly(run.student, task)
    with torch.no_grad():
        ref = module(torch.tensor(ids)).numpy()
    fp32, check = run.export_checked(spec, module, f"student_{task}.onnx", ids, ref)
    int8 = fp32.quantized(ids, per_channel=INT8_MODES[mode])
    # the same reviews in the same batches: dynamic int8 scales depend on the batch
    match = {
        v: round(float(np.abs(f.out - run.graph_on_check(g)[task]).max()), 6)
        for v, f, g in (("student", fp32, "student"), ("student-int8", int8, mode))
    }
    if max(match.values()) > 1e-3:
        raise RuntimeError(f"{spec.name}: served file differs from the evaluated graph: {match}")
    return fp32, int8, check, match


TEACHER_NOTE = (
    "The teacher is MiniLM frozen (fine-tuning its six layers costs several passes over the "
    "reviews, beyond the 9-minute CPU budget); the student's first two layers are the teacher's "
    "own, so where the student scores above the teacher on test the two heads differ by the noise "
    "of training and the test sample (compare valid_metric), not by a better encoder."
)


def _card_extra(run: TextRun, task: str, rows: list[Row]) -> dict:
    fit = run.models.student_fits[task]
    extra = {
        **run.extra,
        "soft_target_weight": fit.alpha,
        "soft_target_weight_valid": run.models.alpha_valid[task],
        "head_choice": {"teacher": run.models.teacher_fits[task].choice, "student": fit.choice},
        "head_valid_macro_f1": {
            "teacher": run.models.teacher_fits[task].tried,
            "student": fit.tried,
        },
    }
    by = {r.variant: r for r in rows}
    if by["teacher"].metric < by["student"].metric:
        extra["teacher_note"] = TEACHER_NOTE
    return extra


def export_classifier(run: TextRun, task: str, baseline: Row) -> ClassifyHead | None:
    """Score the head's rows, publish it if its gate passes; the head for the `classify`
    pipeline, or None when the model was not published."""
    labels = run.data.label_names[task]
    spec = classifier_spec(task, len(labels))
    run.opts.log(f"[text] {spec.name}")
    mode = choose_int8_mode(run.graphs, run.data.y(task, "valid"), task)
    fp32, int8, check, match = _served_files(run, task, spec, mode)
    rows = [
        baseline,
        _teacher_row(run, task),
        _graph_row(run, "student", task, run.graphs["student"], fp32),
        _graph_row(run, "student-int8", task, run.graphs[mode], int8),
    ]
    served = served_variant(rows, "batch_1")
    gate = check_gates(
        rows,
        served=served,
        speed_batch="batch_1",
        min_speedup=3.0,
        quick=run.opts.quick,
        tier=run.opts.tier,
    )
    extra = _card_extra(run, task, rows)
    extra.update(
        export_check=check.to_dict(),
        served_file_vs_rows_graph_max_abs_diff=match,
        int8_mode=mode,
        int8_modes_valid={
            m: macro_f1(run.data.y(task, "valid"), run.graphs[m].valid[task].argmax(1))["macro_f1"]
            for m in INT8_MODES
        },
        served_variant=served,
    )
    card = Card(
        spec.name,
        f"review classification: {task} ({', '.join(labels)})",
        run.dataset_card(task),
        "macro_f1",
        rows,
        gate,
        extra=extra,
    )
    notes = {"variant": served, "pipeline": PIPELINE, "task": task}
    if not run.publish(spec, int8 if served == "student-int8" else fp32, notes, card):
        return None
    return ClassifyHead(task=task, model=spec.name, labels=list(labels))


def write_classify_pipeline(run: TextRun, heads: list[ClassifyHead]) -> None:
    """`classify/`: the published heads and the tokenizer they share (truncating at the
    build's token length)."""
    spec = ClassifySpec(heads=heads, max_tokens=run.ids.max_len)
    folder = ModelFolder(run.opts.out, PIPELINE)
    (folder.version / spec.tokenizer).write_text(run.tokenizer)
    folder.write_pipeline(spec)
    folder.publish()
