"""The additive student (torch) of the score families (risk, cancellation_risk), distilled from
the teacher's probabilities.

logit = bias + sum_f g_f(x_f), with g_f a one-hidden-layer network for a numeric feature and a
learned value per category for a categorical one, so each feature's contribution is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from export.training import FitResult, fit

__all__ = [
    "AdditiveRisk",
    "RiskSplit",
    "StudentSettings",
    "outputs",
    "probability",
    "train_student",
]

SOFT, HARD, L2 = 0.7, 0.3, 1e-4  # the distillation loss: teacher, labels, contribution size
Metric = Callable[[np.ndarray, np.ndarray], float]  # (labels, probabilities) -> higher is better


@dataclass
class RiskSplit:
    """One split of the sessions: standardised numerics, category indices and the labels."""

    num: np.ndarray  # float32 [n, numeric]
    cat: np.ndarray  # int64 [n, categorical]
    y: np.ndarray  # int [n]

    def __len__(self) -> int:
        return len(self.y)


class AdditiveRisk(nn.Module):
    """(numeric, categorical) -> (probability, logit, contributions); logit = bias + sum."""

    def __init__(self, n_num: int, vocab_sizes: list[int], hidden: int):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(n_num, hidden) * 0.5)
        self.b1 = nn.Parameter(torch.randn(n_num, hidden) * 0.1)
        self.w2 = nn.Parameter(torch.randn(n_num, hidden) * 0.1)
        self.table = nn.Parameter(torch.zeros(sum(vocab_sizes)))
        offsets = np.r_[0, np.cumsum(vocab_sizes)[:-1]]
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.int64))
        self.register_buffer("maxes", torch.tensor(vocab_sizes, dtype=torch.int64) - 1)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, numeric, categorical):
        h = torch.relu(numeric.unsqueeze(-1) * self.w1 + self.b1)
        c_num = (h * self.w2).sum(-1)
        idx = torch.minimum(torch.clamp(categorical, min=0), self.maxes) + self.offsets
        c_cat = self.table[idx]
        contributions = torch.cat([c_num, c_cat], dim=1)
        logit = contributions.sum(1, keepdim=True) + self.bias
        return torch.sigmoid(logit), logit, contributions


def outputs(model: AdditiveRisk, split: RiskSplit) -> list[np.ndarray]:
    """The three outputs in torch, as numpy (the reference of the ONNX check)."""
    with torch.no_grad():
        return [t.numpy() for t in model(torch.tensor(split.num), torch.tensor(split.cat))]


def probability(model: AdditiveRisk, split: RiskSplit) -> np.ndarray:
    return outputs(model, split)[0][:, 0]


def _distil_loss(model, num, cat, soft, hard, b):
    _, logit, contrib = model(num[b], cat[b])
    logit = logit[:, 0]
    loss_soft = F.binary_cross_entropy_with_logits(logit, soft[b])
    loss_hard = F.binary_cross_entropy_with_logits(logit, hard[b])
    return SOFT * loss_soft + HARD * loss_hard + L2 * contrib.pow(2).mean()


def _valid_metric(model: AdditiveRisk, valid: RiskSplit, metric: Metric) -> float:
    return float(metric(valid.y, probability(model, valid)))


@dataclass(frozen=True)
class StudentSettings:
    """How long and how wide the student trains (a family's tier picks one)."""

    hidden: int = 16
    epochs: int = 60
    batch_size: int = 256
    budget_s: float = 30.0  # CPU seconds
    patience: int = 8


def train_student(
    train: RiskSplit,
    valid: RiskSplit,
    teacher_prob: np.ndarray,
    vocab_sizes: list[int],
    *,
    metric: Metric,
    settings: StudentSettings,
    seed: int,
    desc: str = "risk student",
) -> tuple[AdditiveRisk, FitResult]:
    """Distil: 0.7 BCE to the teacher's probability + 0.3 BCE to the label, early-stopped on
    `metric(y, prob)` over `valid` (the weights of the best validation epoch are kept)."""
    model = AdditiveRisk(train.num.shape[1], vocab_sizes, hidden=settings.hidden)
    step = partial(
        _distil_loss,
        model,
        torch.tensor(train.num),
        torch.tensor(train.cat),
        torch.tensor(teacher_prob, dtype=torch.float32),
        torch.tensor(train.y, dtype=torch.float32),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny per-feature ops: a second thread only spins on a busy machine
    try:
        result = _fit(model, step, train, valid, metric, settings, seed, desc)
    finally:
        torch.set_num_threads(threads)
    return model, result


def _fit(model, step, train, valid, metric, settings, seed, desc) -> FitResult:
    return fit(
        model,
        step,
        len(train),
        partial(_valid_metric, model, valid, metric),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=1e-2,
        seed=seed,
        patience=settings.patience,
        budget_s=settings.budget_s,
        desc=desc,
    )
