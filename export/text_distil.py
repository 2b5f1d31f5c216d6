"""The teacher and student steps of the text family.

Teacher: MiniLM (6 layers, frozen) + one logistic-regression head per task on its mean-pooled
sentence embedding. Student: the teacher's embeddings and first `STUDENT_LAYERS` layers, its heads
copied, trained once with three losses: cosine to the teacher's sentence embedding (on reviews and
product descriptions), the teacher heads' soft targets (T=2) and the labels (class-balanced).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from export.options import ExportOptions
from export.text_data import TextData, TextIds
from export.text_metrics import embed, macro_f1
from export.text_models import STUDENT_LAYERS, Encoder, linear_head, load_student_bert
from export.training import distillation_loss, fit

__all__ = ["Teacher", "distil_student", "train_teacher"]

TEMPERATURE = 2.0  # of the soft targets
COSINE_WEIGHT = 4.0  # embedding loss weight; soft targets and labels weigh 0.5 each
HEAD_C = (1.0, 4.0, 16.0)  # logistic-regression strengths tried per teacher head


@dataclass
class Teacher:
    """The frozen teacher with its heads, and its outputs on every text (the distillation targets)."""

    encoder: Encoder
    path: str  # the MiniLM folder (the student and the tokenizer come from it)
    emb: dict[str, np.ndarray]  # split -> unit sentence embeddings
    products: np.ndarray  # product descriptions' embeddings
    queries: np.ndarray  # search queries' embeddings
    logits: dict[str, dict[str, torch.Tensor]]  # split -> task -> logits


def _embeddings(opts: ExportOptions, enc: Encoder, ids: TextIds):
    opts.log(f"[text] teacher embeddings for {ids.n_texts} texts")
    t0 = time.perf_counter()

    def pooled(x):
        return enc.pooled(x), {}

    emb = {s: embed(pooled, v)[0] for s, v in ids.split.items()}
    products, queries = embed(pooled, ids.products)[0], embed(pooled, ids.queries)[0]
    opts.log(f"[text] teacher embeddings in {time.perf_counter() - t0:.0f} s")
    return emb, products, queries


def _fit_head(data: TextData, emb: dict[str, np.ndarray], task: str):
    """Logistic regression on the frozen embeddings (C chosen on valid macro-F1), as a Linear."""
    from sklearn.linear_model import LogisticRegression

    y_tr = data.y(task, "train")
    m = y_tr >= 0
    best = None
    for c in HEAD_C:
        lr = LogisticRegression(max_iter=3000, C=c, class_weight="balanced")
        lr.fit(emb["train"][m], y_tr[m])
        f1 = macro_f1(data.y(task, "valid"), lr.predict(emb["valid"]))["macro_f1"]
        if best is None or f1 > best[0]:
            best = (f1, lr)
    return linear_head(best[1].coef_, best[1].intercept_, len(data.label_names[task]))


def train_teacher(opts: ExportOptions, data: TextData, ids: TextIds, bert, path: str) -> Teacher:
    """The teacher's embeddings of every text, its heads, and its logits per split."""
    emb, products, queries = _embeddings(opts, Encoder(bert, {}).eval(), ids)
    heads = {task: _fit_head(data, emb, task) for task in data.tasks}
    logits = {s: {k: h(torch.tensor(e)).detach() for k, h in heads.items()} for s, e in emb.items()}
    return Teacher(Encoder(bert, heads).eval(), path, emb, products, queries, logits)


def _class_weights(data: TextData, task: str) -> torch.Tensor:
    """Balanced class weights on the training labels: the metric is macro-F1."""
    n = len(data.label_names[task])
    y = data.y(task, "train")
    cnt = np.bincount(y[y >= 0], minlength=n).clip(min=1)
    return torch.tensor(cnt.sum() / (n * cnt), dtype=torch.float32)


class _DistilStep:
    """`step(batch) -> loss` over the pool: training reviews first, then product descriptions."""

    def __init__(self, student: Encoder, data: TextData, ids: TextIds, teacher: Teacher):
        prod = np.pad(ids.products, ((0, 0), (0, ids.max_len - ids.products.shape[1])))
        self.student, self.tasks, self.teacher_logits = student, data.tasks, teacher.logits["train"]
        self.ids = torch.tensor(np.concatenate([ids.split["train"], prod]))
        self.emb = torch.tensor(np.concatenate([teacher.emb["train"], teacher.products]))
        self.n_reviews = len(data.split["train"])
        self.labels = {k: torch.tensor(data.y(k, "train")) for k in self.tasks}
        self.weights = {k: _class_weights(data, k) for k in self.tasks}

    def __len__(self) -> int:
        return len(self.ids)

    def __call__(self, b: np.ndarray) -> torch.Tensor:
        b = np.sort(b)
        x = self.ids[b]
        e, lg = self.student(x[:, : int((x != 0).sum(1).max())])
        loss = (1 - (e * self.emb[b]).sum(1)).mean() * COSINE_WEIGHT
        rev = b < self.n_reviews
        if not rev.any():
            return loss
        rb = torch.tensor(b[rev])
        for k in self.tasks:
            s_l = lg[k][torch.tensor(rev)]
            y = self.labels[k][rb]
            has = y >= 0
            ce = F.cross_entropy(s_l[has], y[has], weight=self.weights[k]) if has.any() else 0.0
            loss = (
                loss
                + 0.5 * distillation_loss(s_l, self.teacher_logits[k][rb], TEMPERATURE)
                + 0.5 * ce
            )
        return loss


def distil_student(opts: ExportOptions, data: TextData, ids: TextIds, teacher: Teacher) -> Encoder:
    """The student, distilled from `teacher`, best on valid (cosine to teacher + mean macro-F1)."""
    student = Encoder(load_student_bert(teacher.path), copy.deepcopy(dict(teacher.encoder.heads)))
    step = _DistilStep(student, data, ids, teacher)

    def valid() -> float:
        e, lg = embed(student, ids.split["valid"])
        cos = float((e * teacher.emb["valid"]).sum(1).mean())
        f1 = [macro_f1(data.y(k, "valid"), lg[k].argmax(1))["macro_f1"] for k in data.tasks]
        return cos + np.mean(f1)

    opts.log(f"[text] student: {STUDENT_LAYERS} layers, distilling on {len(step)} texts")
    q = opts.quick
    fit(
        student,
        step,
        len(step),
        valid,
        epochs=2 if q else 6,
        batch_size=32,
        lr=2e-4 if q else 1e-4,
        seed=opts.seed,
        patience=2,
        budget_s=10 if q else 300,
        desc="text student",
    )
    return student.eval()
