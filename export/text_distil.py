"""The teacher and student steps of the text family.

One teacher pass: MiniLM-L6 (frozen) over every review, keeping the unit mean-pooled outputs of
layer `STUDENT_LAYERS` and of the last layer (cached in the build's export cache). The teacher is
the whole MiniLM with a head per task over its sentence embedding and the lexical bag
(`text_lexical`); the student is MiniLM's first `STUDENT_LAYERS` layers (frozen: fine-tuning
costs several teacher passes, beyond the CPU budget) with the same kind of head. Heads are
logistic regressions fitted exactly (`text_heads`); where the teacher's head is better on
validation, the student's embedding part also learns from the teacher's soft targets (T=2,
weight `alpha`), kept only if that is better on validation.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from export import onnx_tools
from export.options import ExportOptions
from export.specs import OnnxSpec, TensorSpec
from export.text_data import INPUT_IDS, TextData, TextIds, TextPlan
from export.text_heads import HeadFit, StackedParts, fit_bag, fit_stack, probabilities
from export.text_lexical import bag_matrix, fit_idf
from export.text_metrics import embed, run_sorted
from export.text_models import (
    EMBED_DIM,
    STUDENT_LAYERS,
    TEACHER_LAYERS,
    Classifier,
    LayerPool,
    TaskHead,
    load_student_bert,
)

__all__ = [
    "ALPHAS",
    "POOLED_LAYERS",
    "TeacherPass",
    "TextModels",
    "build_models",
    "teacher_pass",
]

POOLED_LAYERS = (STUDENT_LAYERS, TEACHER_LAYERS)
ALPHAS = (0.0, 0.5)  # soft-target weights tried for the student, chosen on validation


@dataclass
class TeacherPass:
    """Unit mean-pooled layer outputs of every review, per split: [n, len(POOLED_LAYERS), d]."""

    pooled: dict[str, np.ndarray]
    seconds: float
    cached: bool

    def layer(self, split: str, k: int) -> np.ndarray:
        return self.pooled[split][:, POOLED_LAYERS.index(k)]


def _key(ids: TextIds, path: str) -> str:
    h = hashlib.sha1(f"{path}|{POOLED_LAYERS}".encode())
    for s in sorted(ids.split):
        h.update(s.encode())
        h.update(np.ascontiguousarray(ids.split[s]).tobytes())
    return h.hexdigest()[:16]


def _torch_pass(graph: LayerPool, ids: np.ndarray) -> np.ndarray:
    return embed(lambda x: (graph(x), {}), ids)[0]


def teacher_pass(opts: ExportOptions, ids: TextIds, bert, path: str, work: Path) -> TeacherPass:
    """MiniLM over every split in ONNX Runtime (2 threads, length-sorted batches); the result is
    cached under the build's export cache, keyed by the token ids."""
    cache = work / f"teacher_pass_{_key(ids, path)}.npz"
    if cache.exists():
        with np.load(cache) as z:
            opts.log(f"[text] teacher pass from the cache {cache.name}")
            return TeacherPass({s: z[s] for s in ids.split}, 0.0, True)
    n = sum(len(v) for v in ids.split.values())
    opts.log(f"[text] teacher pass over {n} reviews ({ids.max_len} tokens at most)")
    t0 = time.perf_counter()
    graph = LayerPool(bert, POOLED_LAYERS).eval()
    if opts.quick:  # a few hundred short reviews: torch, no 90 MB export
        pooled = {s: _torch_pass(graph, v) for s, v in ids.split.items()}
    else:
        spec = OnnxSpec(
            "teacher_pass",
            inputs=(INPUT_IDS,),
            outputs=(TensorSpec("pooled", "TYPE_FP32", (len(POOLED_LAYERS), EMBED_DIM)),),
            max_batch_size=64,
        )
        example = (torch.tensor(ids.split["valid"][:4, :16]),)
        sess = onnx_tools.session(spec.export(graph, example, work / "teacher_pass.onnx"), 2)
        pooled = {s: run_sorted(sess, v) for s, v in ids.split.items()}
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **pooled)
    seconds = round(time.perf_counter() - t0, 1)
    opts.log(f"[text] teacher pass in {seconds:.0f} s")
    return TeacherPass(pooled, seconds, False)


@dataclass
class TextModels:
    """The teacher and the student with their heads, and what choosing them measured."""

    teacher: Classifier
    student: Classifier
    teacher_fits: dict[str, HeadFit]
    student_fits: dict[str, HeadFit]
    alpha_valid: dict[str, dict[str, float]]  # task -> soft-target weight -> valid macro-F1
    teacher_test: dict[str, np.ndarray]  # the teacher's test logits (its card row)


def _logits(head: TaskHead, ids: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return head(torch.tensor(ids), torch.tensor(pooled)).numpy()


def _check_student_layers(student: Classifier, ids: TextIds, tp: TeacherPass) -> None:
    """The student's own pooling must give the teacher pass's layer-`STUDENT_LAYERS` features
    its heads were trained on."""
    x = ids.split["valid"][:8]
    with torch.no_grad():
        got = student.pooled(torch.tensor(x)).numpy()
    diff = float(np.abs(got - tp.layer("valid", STUDENT_LAYERS)[:8]).max())
    if diff > 1e-3:
        raise RuntimeError(f"student layers differ from the teacher pass's (max |diff| {diff})")


def build_models(
    opts: ExportOptions,
    plan: TextPlan,
    data: TextData,
    ids: TextIds,
    tp: TeacherPass,
    bert,
    path: str,
) -> TextModels:
    """Per task: the bag part (shared by teacher and student: both read the same bag), the
    teacher's stack on the last layer, then the student's on layer `STUDENT_LAYERS`, with the
    teacher's soft targets tried at each weight in `ALPHAS` where the teacher is the better on
    validation (nothing is worth distilling from a weaker one); every choice on validation."""
    idf = fit_idf(ids.split["train"])
    splits = ("train", "valid")
    bag = {s: bag_matrix(ids.split[s], idf) for s in splits}
    t_pool = {s: tp.layer(s, TEACHER_LAYERS) for s in ids.split}
    s_pool = {s: tp.layer(s, STUDENT_LAYERS) for s in ids.split}
    teacher_fits, student_fits, alpha_valid = {}, {}, {}
    for task in data.tasks:
        t0 = time.perf_counter()
        y = {s: data.y(task, s) for s in splits}
        n = len(data.label_names[task])
        bag_part, bag_c, bag_tried = fit_bag(bag, y, n)
        parts = StackedParts(bag_part, bag_c, bag, {s: t_pool[s] for s in splits}, y, n)
        tf = fit_stack(parts, idf)
        parts = replace(parts, pooled={s: s_pool[s] for s in splits})
        fits = [fit_stack(parts, idf)]
        if tf.valid_f1 > fits[0].valid_f1:  # soft targets only from a teacher better on valid
            soft = probabilities(tf, bag["train"], t_pool["train"])
            fits += [fit_stack(parts, idf, soft, a) for a in ALPHAS[1:]]
        tf.tried |= {f"bag {k}": v for k, v in bag_tried.items()}
        teacher_fits[task] = tf
        student_fits[task] = max(fits, key=lambda f: f.valid_f1)  # the first on a tie
        alpha_valid[task] = {f"{f.alpha:g}": f.valid_f1 for f in fits}
        opts.log(
            f"[text] {task} heads in {time.perf_counter() - t0:.0f} s: bag C={bag_c:g}, "
            f"valid macro-F1 teacher {tf.valid_f1} ({tf.choice}), student "
            f"{student_fits[task].valid_f1} ({student_fits[task].choice}, "
            f"alpha {student_fits[task].alpha:g})"
        )
    t_heads = {k: f.head for k, f in teacher_fits.items()}
    teacher = Classifier(bert, t_heads).eval()
    student_bert = load_student_bert(path, STUDENT_LAYERS)
    student = Classifier(student_bert, {k: f.head for k, f in student_fits.items()}).eval()
    _check_student_layers(student, ids, tp)
    test = {k: _logits(f.head, ids.split["test"], t_pool["test"]) for k, f in teacher_fits.items()}
    return TextModels(teacher, student, teacher_fits, student_fits, alpha_valid, test)
