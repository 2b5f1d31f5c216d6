"""The teacher and student steps of the text family.

One teacher pass: MiniLM-L6 (frozen) over every review, keeping the unit mean-pooled outputs of
layer `STUDENT_LAYERS` and of the last layer (cached in the build's export cache). The teacher is
the whole MiniLM with a head per task over its sentence embedding and the lexical bag
(`text_lexical`); the student is MiniLM's first `STUDENT_LAYERS` layers (frozen: fine-tuning
costs several teacher passes, beyond the CPU budget) with the same kind of head, trained on the
labels; where the teacher's head is better on validation, also with the teacher's soft targets
(T=2, weight `alpha`), kept only if that is better on validation.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from export import onnx_tools
from export.options import ExportOptions
from export.specs import OnnxSpec, TensorSpec
from export.text_data import INPUT_IDS, TextData, TextIds, TextPlan
from export.text_lexical import Lexical, fit_idf
from export.text_metrics import embed, macro_f1, run_sorted
from export.text_models import (
    EMBED_DIM,
    STUDENT_LAYERS,
    TEACHER_LAYERS,
    Classifier,
    LayerPool,
    TaskHead,
    load_student_bert,
)
from export.training import distillation_loss, fit

__all__ = [
    "ALPHAS",
    "POOLED_LAYERS",
    "HeadFit",
    "TeacherPass",
    "TextModels",
    "build_models",
    "teacher_pass",
    "train_head",
]

POOLED_LAYERS = (STUDENT_LAYERS, TEACHER_LAYERS)
TEMPERATURE = 2.0  # of the soft targets
ALPHAS = (0.0, 0.5)  # soft-target weights tried for the student, chosen on validation
LR = 1e-2


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
class HeadFit:
    head: TaskHead
    valid_f1: float
    epochs: int
    alpha: float


def _weights(y: np.ndarray, n: int) -> torch.Tensor:
    """Balanced class weights on the training labels: the metric is macro-F1."""
    cnt = np.bincount(y, minlength=n).clip(min=1)
    return torch.tensor(cnt.sum() / (n * cnt), dtype=torch.float32)


def train_head(
    opts: ExportOptions,
    plan: TextPlan,
    data: TextData,
    ids: TextIds,
    pooled: dict[str, np.ndarray],
    idf: np.ndarray,
    task: str,
    soft: np.ndarray | None = None,
    alpha: float = 0.0,
) -> HeadFit:
    """One task's head over `pooled` [n, d] per split, trained on the labelled training reviews
    (+ `alpha` x KL to the `soft` training logits), weights of the best validation macro-F1."""
    n = len(data.label_names[task])
    y_tr, y_va = data.y(task, "train"), data.y(task, "valid")
    keep = np.flatnonzero(y_tr >= 0)
    x = torch.tensor(ids.split["train"][keep])
    p = torch.tensor(pooled["train"][keep])
    y = torch.tensor(y_tr[keep])
    t = torch.tensor(soft[keep]) if soft is not None else None
    head = TaskHead(Lexical(idf, n), p.mean(0), p.std(0) + 1e-6, n)
    w = _weights(y_tr[keep], n)
    lens = (x != 0).sum(1)

    def step(b: np.ndarray) -> torch.Tensor:
        xb = x[b, : int(lens[b].max())]
        out = head(xb, p[b])
        loss = F.cross_entropy(out, y[b], weight=w)
        if t is not None and alpha > 0:
            loss = (1 - alpha) * loss + alpha * distillation_loss(out, t[b], TEMPERATURE)
        return loss

    x_va, p_va = torch.tensor(ids.split["valid"]), torch.tensor(pooled["valid"])

    def valid() -> float:
        return macro_f1(y_va, head(x_va, p_va).argmax(1).numpy())["macro_f1"]

    res = fit(
        head,
        step,
        len(keep),
        valid,
        epochs=plan.epochs,
        batch_size=plan.batch,
        lr=LR,
        seed=opts.seed,
        patience=3,
        budget_s=plan.budget_s,
        desc=f"{task} head (alpha {alpha:g})",
    )
    return HeadFit(head.eval(), res.best_score, res.epochs, alpha)


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
    """Teacher heads on the last layer, then student heads on layer `STUDENT_LAYERS`, each task's
    soft-target weight chosen among `ALPHAS` on validation (tried only where the teacher is the
    better on validation: nothing is worth distilling from a weaker one)."""
    idf = fit_idf(ids.split["train"])
    splits = list(ids.split)
    t_pool = {s: tp.layer(s, TEACHER_LAYERS) for s in splits}
    s_pool = {s: tp.layer(s, STUDENT_LAYERS) for s in splits}
    teacher_fits, student_fits, alpha_valid = {}, {}, {}
    for task in data.tasks:
        tf = train_head(opts, plan, data, ids, t_pool, idf, task)
        fits = [train_head(opts, plan, data, ids, s_pool, idf, task)]
        if tf.valid_f1 > fits[0].valid_f1:  # soft targets only from a teacher better on valid
            soft = _logits(tf.head, ids.split["train"], t_pool["train"])
            fits += [
                train_head(opts, plan, data, ids, s_pool, idf, task, soft, a) for a in ALPHAS[1:]
            ]
        teacher_fits[task] = tf
        student_fits[task] = max(fits, key=lambda f: f.valid_f1)  # the first on a tie
        alpha_valid[task] = {f"{f.alpha:g}": f.valid_f1 for f in fits}
    t_heads = {k: f.head for k, f in teacher_fits.items()}
    teacher = Classifier(bert, t_heads).eval()
    student_bert = load_student_bert(path, STUDENT_LAYERS)
    student = Classifier(student_bert, {k: f.head for k, f in student_fits.items()}).eval()
    _check_student_layers(student, ids, tp)
    test = {k: _logits(f.head, ids.split["test"], t_pool["test"]) for k, f in teacher_fits.items()}
    return TextModels(teacher, student, teacher_fits, student_fits, alpha_valid, test)
