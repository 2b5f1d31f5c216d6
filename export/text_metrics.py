"""Embedding, scoring and metrics helpers of the text family, and the seed article's LSTM
classifier (the `seed` row of the text cards)."""

from __future__ import annotations

import numpy as np

from export.options import ExportOptions
from export.training import fit


def _embed(model_fn, ids: np.ndarray, batch: int = 64) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run the encoder over `ids` in length-sorted batches (less padding), back in input order."""
    import torch

    lens = (ids != 0).sum(1)
    order = np.argsort(lens)
    embs, logits = [], {}
    with torch.no_grad():
        for i in range(0, len(ids), batch):
            b = order[i : i + batch]
            t = int(lens[b].max())
            e, lg = model_fn(torch.tensor(ids[b, :t]))[:2]
            embs.append(e.numpy())
            for k, v in lg.items():
                logits.setdefault(k, []).append(v.numpy())
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return np.concatenate(embs)[inv], {k: np.concatenate(v)[inv] for k, v in logits.items()}


def _run_sorted(sess, ids: np.ndarray, batch: int = 64) -> np.ndarray:
    """ONNX Runtime over length-sorted, trimmed batches, results in input order."""
    lens = (ids != 0).sum(1)
    order = np.argsort(lens)
    outs = []
    for i in range(0, len(ids), batch):
        b = order[i : i + batch]
        outs.append(sess.run(None, {"input_ids": ids[b, : int(lens[b].max())]})[0])
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return np.concatenate(outs)[inv]


def _macro_f1(y, pred) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    m = y >= 0
    return {
        "macro_f1": round(float(f1_score(y[m], pred[m], average="macro")), 4),
        "accuracy": round(float(accuracy_score(y[m], pred[m])), 4),
    }


def _topk(q: np.ndarray, c: np.ndarray, k: int = 10) -> np.ndarray:
    s = q @ c.T
    return np.argsort(-s, axis=1)[:, :k]


def _recall(a: np.ndarray, b: np.ndarray) -> float:
    return round(
        float(np.mean([len(set(x) & set(y)) / len(y) for x, y in zip(a, b, strict=True)])), 4
    )


def _train_seed_lstm(ids, labels, split, n_cls: int, opts: ExportOptions):
    """The seed article's classifier: token embedding -> one LSTM -> linear on the last real step."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SeedText(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(30522, 64, padding_idx=0)
            self.lstm = nn.LSTM(64, 96, batch_first=True)
            self.out = nn.Linear(96, n_cls)

        def forward(self, x):
            h, _ = self.lstm(self.emb(x))
            last = ((x != 0).sum(1) - 1).clamp(min=0)
            return self.out(h[torch.arange(len(x)), last])

    model = SeedText()
    tr, va = split["train"], split["valid"]
    keep = labels[tr] >= 0
    x_tr, y_tr = torch.tensor(ids["train"][keep]), torch.tensor(labels[tr][keep])
    x_va, y_va = torch.tensor(ids["valid"]), labels[va]
    w = torch.tensor(
        len(y_tr) / (n_cls * np.bincount(y_tr.numpy(), minlength=n_cls).clip(min=1)),
        dtype=torch.float32,
    )

    def step(b):
        return F.cross_entropy(model(x_tr[b]), y_tr[b], weight=w)

    fit(
        model,
        step,
        len(y_tr),
        lambda: _macro_f1(y_va, model(x_va).argmax(1).numpy())["macro_f1"],
        epochs=3 if opts.quick else 12,
        batch_size=64,
        lr=3e-3,
        seed=opts.seed,
        patience=3,
        budget_s=3 if opts.quick else 40,
        desc="seed LSTM text",
    )
    return model.eval()
