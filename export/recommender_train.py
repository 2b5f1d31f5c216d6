"""Training the next-item models (torch): the catalogue softmax, distillation, full-catalogue scores."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from export.recommender_data import RecData, encode_histories, rank_metrics, training_windows
from export.seqmodels import last_valid_index
from export.training import FitResult, distillation_loss, fit

__all__ = ["SeqTraining", "scores", "train_seq"]

TEMPERATURE, ALPHA = 2.0, 0.5  # distillation: soft targets at T=2, half labels, half teacher


@dataclass(frozen=True)
class SeqTraining:
    """One training run's settings (`fit`'s keywords): the same optimiser and patience for every
    sequence model."""

    desc: str
    epochs: int
    budget_s: float
    lr: float = 2e-3
    batch_size: int = 128
    patience: int = 2


def _logits(model, hidden):
    """Hidden states -> logits over the whole catalogue (LSTM: its own head; SASRec: tied)."""
    return model.out(hidden) if hasattr(model, "out") else hidden @ model.item_matrix().T


def _logits_at(model, x, mask):
    # only the positions with a target: the catalogue softmax is the cost
    return _logits(model, model.hidden(x)[mask])


def _seq_loss(model, teacher, xs, ys, b):
    mask = ys[b] >= 0
    lg = _logits_at(model, xs[b], mask)
    loss = F.cross_entropy(lg, ys[b][mask])
    if teacher is None:
        return loss
    with torch.no_grad():
        tl = _logits_at(teacher, xs[b], mask)
    return ALPHA * loss + (1 - ALPHA) * distillation_loss(lg, tl, TEMPERATURE)


def scores(model, hists: list[np.ndarray], max_len: int, batch: int = 512) -> np.ndarray:
    """[n_histories, n_items]: the model's scores after each history, in torch."""
    x = encode_histories(hists, max_len, pad=-1) + 1
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            tok = torch.tensor(x[i : i + batch])
            h = model.hidden(tok)
            h = h[torch.arange(len(tok)), last_valid_index(tok)]
            outs.append(_logits(model, h).numpy())
    return np.concatenate(outs)


def _valid_ndcg(model, data: RecData) -> float:
    return rank_metrics(scores(model, data.valid_hist(), data.max_len), data.valid_target)[
        "ndcg@10"
    ]


def train_seq(model, data: RecData, run: SeqTraining, seed: int, teacher=None) -> FitResult:
    """Next-item cross-entropy on the training windows (+ distillation from `teacher` if given),
    early-stopped on validation NDCG@10."""
    xs, ys = training_windows(data.train, data.max_len)
    step = partial(_seq_loss, model, teacher, torch.tensor(xs), torch.tensor(ys))
    return fit(model, step, len(xs), partial(_valid_ndcg, model, data), seed=seed, **asdict(run))
