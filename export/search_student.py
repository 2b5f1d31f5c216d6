"""The query student: token ids -> unit embedding in the teacher's space, fast on one CPU thread.

A bag of tokens with learned importance, then a residual MLP (nanoGPT-sized pieces):

    e_t = E[id_t]                      E: MiniLM's word-embedding table (trained further)
    a_t = softmax_t(g[id_t])           g: one importance logit per vocabulary entry (from 0)
    x   = sum_t a_t e_t                pad tokens (id 0) masked out
    y   = W_o (x + MLP(LayerNorm(x)))  MLP: 384 -> hidden -> 384, GELU
    out = y / |y|

Distilled asymmetrically: only queries go through it, and its loss is 1 - cosine to the
teacher's embedding of the same text (products are embedded by the teacher itself). It has no
attention between tokens: a query's word order does not change it, which costs little for
2-4 word queries and keeps a query at a few table lookups and two small matrix products.
The table and the importance logits are sparse parameters (SparseAdam): a step touches only
the rows of the tokens in its batch.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["StudentConfig", "build_student", "embed_ids", "train_student"]


@dataclass(frozen=True)
class StudentConfig:
    hidden: int = 1024
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3  # the MLP's (Adam)
    table_lr: float = 1e-3  # the token table's and importance logits' (SparseAdam)
    patience: int = 2
    budget_s: float = 120.0  # CPU seconds of training


def build_student(word_embeddings: np.ndarray, hidden: int):
    """A fresh student over the teacher's word-embedding table [vocab, dim]."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    vocab, dim = word_embeddings.shape

    class QueryStudent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            table = torch.tensor(word_embeddings, dtype=torch.float32)
            self.table = nn.Embedding.from_pretrained(
                table, freeze=False, padding_idx=0, sparse=True
            )
            self.importance = nn.Embedding(vocab, 1, sparse=True)
            nn.init.zeros_(self.importance.weight)
            self.norm = nn.LayerNorm(dim)
            self.up = nn.Linear(dim, hidden)
            self.down = nn.Linear(hidden, dim)
            self.out = nn.Linear(dim, dim)
            nn.init.eye_(self.out.weight)
            nn.init.zeros_(self.out.bias)

        def forward(self, input_ids):
            real = input_ids != 0
            logits = self.importance(input_ids).squeeze(-1).masked_fill(~real, -1e4)
            weights = torch.softmax(logits, dim=1).unsqueeze(-1)
            x = (self.table(input_ids) * weights).sum(1)
            x = x + self.down(F.gelu(self.up(self.norm(x))))
            return F.normalize(self.out(x), dim=1)

    return QueryStudent()


def embed_ids(model, ids: np.ndarray, batch: int = 512) -> np.ndarray:
    """float32 [n, dim]: the torch student over token ids [n, T] (trimmed per batch)."""
    import torch

    out = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(ids), batch):
            x = ids[i : i + batch]
            width = max(1, int((x != 0).sum(1).max()))
            out.append(model(torch.tensor(x[:, :width])).numpy())
    return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


def _optimizers(model, cfg: StudentConfig):
    import torch

    sparse = [model.table.weight, model.importance.weight]
    dense = [p for n, p in model.named_parameters() if not n.startswith(("table", "importance"))]
    return [torch.optim.SparseAdam(sparse, lr=cfg.table_lr), torch.optim.Adam(dense, lr=cfg.lr)]


def train_student(
    model,
    ids: np.ndarray,
    targets: np.ndarray,
    valid,
    cfg: StudentConfig,
    seed: int,
    desc: str = "search student",
) -> dict:
    """Minimise 1 - cos(student(ids), targets) over shuffled minibatches; keep the weights of the
    best `valid()` (higher is better: the validation queries' mean cosine to the teacher).
    Stops after `cfg.epochs`, `cfg.patience` epochs without improvement or `cfg.budget_s` CPU s."""
    import torch

    opts = _optimizers(model, cfg)
    x_all, y_all = torch.tensor(ids), torch.tensor(targets)
    lens = (ids != 0).sum(1)
    rng = np.random.default_rng(seed)
    best, best_state, bad, epochs = -np.inf, None, 0, 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        for b in np.array_split(rng.permutation(len(ids)), max(1, len(ids) // cfg.batch_size)):
            x = x_all[b, : int(lens[b].max())]
            loss = (1.0 - (model(x) * y_all[b]).sum(1)).mean()
            for o in opts:
                o.zero_grad()
            loss.backward()
            for o in opts:
                o.step()
        score = float(valid())
        epochs = epoch + 1
        print(f"  {desc}: epoch {epochs} loss {loss.item():.4f} valid {score:.4f}", file=sys.stderr)
        if score > best:
            best, best_state, bad = score, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
        if bad >= cfg.patience or time.process_time() - cpu0 > cfg.budget_s:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {
        "valid_cosine": round(best, 4),
        "epochs": epochs,
        "seconds": round(time.perf_counter() - t0, 1),
    }
