"""Training the next-item models (torch): the catalogue softmax, distillation, full-catalogue ranks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from export.recommender_data import SeqSplit, encode_histories, training_windows
from export.training import FitResult, distillation_loss, fit

__all__ = [
    "SeqTraining",
    "metrics_of_ranks",
    "model_metrics",
    "target_ranks",
    "train_seq",
    "vector_metrics",
]

TEMPERATURE, ALPHA = 2.0, 0.5  # distillation: soft targets at T=2, half labels, half teacher
EVAL_BATCH = 1024


@dataclass(frozen=True)
class SeqTraining:
    """One training run's settings: `fit`'s keywords (the same optimiser, schedule and patience
    for every sequence model) and the training windows (`windows_per_user` most recent windows
    of each customer, the loss on every position)."""

    desc: str
    epochs: int
    budget_s: float
    lr: float = 4e-3
    batch_size: int = 64
    patience: int = 2
    cosine: bool = True
    windows_per_user: int = 2

    def fit_kwargs(self) -> dict:
        kw = asdict(self)
        del kw["windows_per_user"]
        return kw


def _logits_at(model, x, mask):
    # only the positions with a target: the catalogue softmax is the cost
    return model.logits(model.hidden(x)[mask])


def _seq_loss(model, teacher, xs, ys, b):
    mask = ys[b] >= 0
    lg = _logits_at(model, xs[b], mask)
    loss = F.cross_entropy(lg, ys[b][mask])
    if teacher is None:
        return loss
    with torch.no_grad():
        tl = _logits_at(teacher, xs[b], mask)
    return ALPHA * loss + (1 - ALPHA) * distillation_loss(lg, tl, TEMPERATURE)


def target_ranks(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """0-based rank of each row's target among every item (ties count against the target)."""
    t = scores[np.arange(len(scores)), target][:, None]
    return (scores > t).sum(1) + (scores == t).sum(1) - 1


def metrics_of_ranks(rank: np.ndarray, k: int = 10) -> dict[str, float]:
    hit = rank < k
    return {
        "hr@10": round(float(hit.mean()), 4),
        "ndcg@10": round(float(np.where(hit, 1.0 / np.log2(rank + 2), 0.0).mean()), 4),
    }


def vector_metrics(users: np.ndarray, item_emb: np.ndarray, target: np.ndarray) -> dict:
    """HR@10 / NDCG@10 of user vectors [n, d] against the item matrix, in chunks."""
    ranks = [
        target_ranks(users[i : i + EVAL_BATCH] @ item_emb.T, target[i : i + EVAL_BATCH])
        for i in range(0, len(users), EVAL_BATCH)
    ]
    return metrics_of_ranks(np.concatenate(ranks))


def model_metrics(model, hists: list[np.ndarray], target: np.ndarray) -> dict[str, float]:
    """The torch model's HR@10 / NDCG@10 on (history, target) queries, full catalogue."""
    x = torch.tensor(encode_histories(hists, model.max_len, pad=-1) + 1)
    ranks = []
    with torch.no_grad():
        for i in range(0, len(x), EVAL_BATCH):
            lg = model.logits(model.last_hidden(x[i : i + EVAL_BATCH])).numpy()
            ranks.append(target_ranks(lg, target[i : i + EVAL_BATCH]))
    return metrics_of_ranks(np.concatenate(ranks))


def _valid_ndcg(model, split: SeqSplit) -> float:
    return model_metrics(model, split.valid_hist, split.valid_target)["ndcg@10"]


def train_seq(model, split: SeqSplit, run: SeqTraining, seed: int, teacher=None) -> FitResult:
    """Next-item cross-entropy on training windows of the model's history length (+ distillation
    from `teacher` if given, on the same windows), early-stopped on validation NDCG@10."""
    xs, ys = training_windows(
        split.train, model.max_len, run.windows_per_user, loss_positions=model.max_len
    )
    step = partial(_seq_loss, model, teacher, torch.tensor(xs), torch.tensor(ys))
    valid = partial(_valid_ndcg, model, split)
    return fit(model, step, len(xs), valid, seed=seed, **run.fit_kwargs())
