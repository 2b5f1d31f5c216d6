"""The ranker's models (torch) and their listwise training.

Teacher: DCN-v2 (3 cross layers + a 256-256 MLP); student: an MLP (32-16) distilled from the
teacher's listwise scores plus the labels. Both take (features, retrieval_score), standardised
inside the graph with the training set's mean and standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from export.ranker_features import Queries, ndcg
from export.training import distillation_loss, fit

__all__ = [
    "TIERS",
    "DCNv2",
    "MLP",
    "Plan",
    "QuerySplit",
    "plan_of",
    "scores",
    "split_queries",
    "train_student",
    "train_teacher",
]

TEMPERATURE = 2.0


class Scaled(nn.Module):
    """Standardises `[features, retrieval_score]` with fixed buffers."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def inputs(self, features, retrieval_score):
        return (torch.cat([features, retrieval_score], 1) - self.mean) / self.std


class DCNv2(Scaled):
    def __init__(self, mean: np.ndarray, std: np.ndarray, cross: int = 3, deep: int = 256):
        super().__init__(mean, std)
        d = len(mean)
        self.cross = nn.ModuleList(nn.Linear(d, d) for _ in range(cross))
        self.deep = nn.Sequential(nn.Linear(d, deep), nn.ReLU(), nn.Linear(deep, deep), nn.ReLU())
        self.out = nn.Linear(d + deep, 1)

    def forward(self, features, retrieval_score):
        x0 = self.inputs(features, retrieval_score)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.out(torch.cat([x, self.deep(x0)], 1))


class MLP(Scaled):
    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__(mean, std)
        self.net = nn.Sequential(
            nn.Linear(len(mean), 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1)
        )

    def forward(self, features, retrieval_score):
        return self.net(self.inputs(features, retrieval_score))


@dataclass
class QuerySplit:
    """Training queries: `fit` (with the target retrieved) and `valid` (10% held out)."""

    queries: Queries
    fit: np.ndarray
    valid: np.ndarray

    def standardisation(self) -> tuple[np.ndarray, np.ndarray]:
        x, s = self.queries.flat()
        flat = np.concatenate([x, s], 1)
        return flat.mean(0), flat.std(0) + 1e-6


def split_queries(train: Queries, seed: int) -> QuerySplit:
    held = np.random.default_rng(seed).random(len(train)) < 0.1
    # queries without the target retrieved teach nothing
    return QuerySplit(train, np.flatnonzero(~held & (train.y.sum(1) > 0)), np.flatnonzero(held))


def scores(model, x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """[q, K] scores of `model` on features [q, K, F] and retrieval scores [q, K], in torch."""
    b, k, f = x.shape
    with torch.no_grad():
        out = model(torch.tensor(x.reshape(-1, f)), torch.tensor(s.reshape(-1, 1)))
    return out.reshape(b, k).numpy()


@dataclass
class _Batches:
    """The training queries as tensors; `listwise(model, b)` scores minibatch `b` of `fit`."""

    x: torch.Tensor
    s: torch.Tensor
    y: torch.Tensor
    fit: np.ndarray

    @classmethod
    def of(cls, split: QuerySplit) -> _Batches:
        q = split.queries
        return cls(torch.tensor(q.x), torch.tensor(q.s), torch.tensor(q.y), split.fit)

    def listwise(self, model, b):
        idx = self.fit[b]
        k, f = self.x.shape[1], self.x.shape[2]
        logits = model(self.x[idx].reshape(-1, f), self.s[idx].reshape(-1, 1))
        return logits.reshape(len(idx), k), self.y[idx]


def _label_loss(logits, y):
    return -(F.log_softmax(logits, 1) * y).sum(1).mean()


def _teacher_loss(batches: _Batches, teacher, b):
    return _label_loss(*batches.listwise(teacher, b))


def _student_loss(batches: _Batches, student, teacher, b):
    logits, y = batches.listwise(student, b)
    with torch.no_grad():
        t_logits = batches.listwise(teacher, b)[0]
    kd = distillation_loss(logits, t_logits, TEMPERATURE, dim=1)
    return 0.5 * kd + 0.5 * _label_loss(logits, y)


def _valid_ndcg(model, split: QuerySplit) -> float:
    q, v = split.queries, split.valid
    return ndcg(scores(model, q.x[v], q.s[v]), q.y[v])


@dataclass(frozen=True)
class Plan:
    """One tier: epochs at most and each run's CPU cap (early stopping usually ends it first)."""

    epochs: int
    cpu_s: float
    budget: str  # the wall-clock budget the tier is sized for (the card says it)
    student_lr: float = 3e-3


TIERS = {
    "quick": Plan(10, 6, "tests only"),
    # preview: the student MLP at a higher rate, it has a few seconds to catch up
    "preview": Plan(20, 12, "recommender + ranker ~60 s wall on a quiet 2-core machine", 1e-2),
    "full": Plan(40, 45, "2 min wall on a quiet 2-core machine"),
}


def plan_of(opts) -> tuple[str, Plan]:
    tier = "quick" if opts.quick else opts.tier
    return tier, TIERS[tier]


def _fit(model, split: QuerySplit, step, plan: Plan, *, seed: int, fits: dict, **kw) -> None:
    r = fit(
        model,
        step,
        len(split.fit),
        partial(_valid_ndcg, model, split),
        epochs=plan.epochs,
        batch_size=64,
        seed=seed,
        patience=4,
        budget_s=plan.cpu_s,
        **kw,
    )
    fits[kw["desc"]] = {"epochs": r.epochs, "valid_ndcg@10": round(r.best_score, 4), "s": r.seconds}


def train_teacher(split: QuerySplit, plan: Plan, *, seed: int, fits: dict) -> DCNv2:
    """DCN-v2 on the listwise softmax loss; frozen when done."""
    teacher = DCNv2(*split.standardisation())
    step = partial(_teacher_loss, _Batches.of(split), teacher)
    _fit(
        teacher,
        split,
        step,
        plan,
        seed=seed,
        fits=fits,
        lr=2e-3,
        desc="ranker teacher DCN-v2",
        weight_decay=1e-5,
    )
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def train_student(split: QuerySplit, teacher: DCNv2, plan: Plan, *, seed: int, fits: dict) -> MLP:
    """The MLP on half listwise distillation (T=2), half the listwise label loss."""
    student = MLP(*split.standardisation())
    step = partial(_student_loss, _Batches.of(split), student, teacher)
    lr = plan.student_lr
    _fit(student, split, step, plan, seed=seed, fits=fits, lr=lr, desc="ranker student MLP")
    return student
