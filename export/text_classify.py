"""The review classifiers `classify_<task>` (input_ids -> logits) and the `classify` pipeline that
serves the published ones: rows baseline, seed, teacher, student, student-int8; macro-F1."""

from __future__ import annotations

from dataclasses import replace

from export.card import Card, Row, check_gates
from export.repository import ModelFolder
from export.specs import OnnxSpec
from export.text_baselines import classify_baseline_row, seed_row
from export.text_data import INPUT_IDS, MAX_TOKENS, dataset_card
from export.text_metrics import macro_f1
from export.text_models import STUDENT_LAYERS, HeadOnly
from export.text_onnx import INT8_NOTE, Exported, TextRun, logits
from export.training import param_count
from server.contract.pipelines import ClassifyHead, ClassifySpec

__all__ = [
    "CLASSIFY",
    "PIPELINE",
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


def _teacher_row(run: TextRun, task: str) -> Row:
    m = macro_f1(run.data.y(task, "test"), run.teacher.logits["test"][task].numpy().argmax(1))
    return Row(
        "teacher",
        m["macro_f1"],
        m,
        params=param_count(run.teacher.encoder.bert) + param_count(run.teacher.encoder.heads[task]),
        size_bytes=run.teacher_size,
        latency_ms=run.teacher_latency,
        note="MiniLM-L6 + logistic-regression head",
    )


def _student_row(
    run: TextRun, variant: str, y, exported: Exported, params: int, note: str = "", **extra: float
) -> Row:
    """An exported student's row: test macro-F1 of its ONNX outputs (and `extra` metrics)."""
    m = {**macro_f1(y, exported.out.argmax(1)), **extra}
    return Row(
        variant,
        m["macro_f1"],
        m,
        params=params,
        size_bytes=exported.size_bytes,
        latency_ms=run.bench.latency(exported.sess),
        note=note,
    )


def _student_rows(run: TextRun, task: str, fp32: Exported, int8: Exported) -> list[Row]:
    y = run.data.y(task, "test")
    params = param_count(run.student.bert) + param_count(run.student.heads[task])
    agreement = round(float((int8.out.argmax(1) == fp32.out.argmax(1)).mean()), 4)
    return [
        _student_row(run, "student", y, fp32, params),
        _student_row(
            run, "student-int8", y, int8, params, INT8_NOTE, agreement_with_fp32=agreement
        ),
    ]


def export_classifier(run: TextRun, task: str) -> ClassifyHead | None:
    """Train the reference rows, export the student's `task` head, publish it if its gate passes;
    the head for the `classify` pipeline, or None when the model was not published."""
    labels = run.data.label_names[task]
    spec = classifier_spec(task, len(labels))
    run.opts.log(f"[text] {spec.name}")
    rows = [
        classify_baseline_row(run.data, task),
        seed_row(run.opts, run.data, run.ids, task),
        _teacher_row(run, task),
    ]
    test_ids = run.ids.split["test"]
    fp32, check = run.export_checked(
        spec, HeadOnly(run.student, task), f"student_{task}.onnx", test_ids, run.student_test[task]
    )
    int8 = fp32.quantized(test_ids)
    rows += _student_rows(run, task, fp32, int8)
    ok_int8 = rows[-1].metric >= 0.99 * rows[-2].metric
    served = "student-int8" if ok_int8 else "student"
    gate = check_gates(
        rows, served=served, speed_batch="batch_1", min_speedup=3.0, quick=run.opts.quick
    )
    card = Card(
        spec.name,
        f"review classification: {task} ({', '.join(labels)})",
        dataset_card(run.data, run.opts.quick),
        "macro_f1",
        rows,
        gate,
        extra={
            "cleaning": run.data.cleaning,
            "export_check": check.to_dict(),
            "served_variant": served,
            "latency_input": "32 tokens",
            "student_layers": STUDENT_LAYERS,
        },
    )
    notes = {"variant": served, "pipeline": PIPELINE, "task": task}
    if not run.publish(spec, int8 if ok_int8 else fp32, notes, card):
        return None
    return ClassifyHead(task=task, model=spec.name, labels=list(labels))


def write_classify_pipeline(run: TextRun, heads: list[ClassifyHead]) -> None:
    """`classify/`: the published heads and the tokenizer they share."""
    spec = ClassifySpec(heads=heads, max_tokens=MAX_TOKENS)
    folder = ModelFolder(run.opts.out, PIPELINE)
    (folder.version / spec.tokenizer).write_text(run.tokenizer)
    folder.write_pipeline(spec)
    folder.publish()
