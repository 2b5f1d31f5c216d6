"""The lexical half of the review classifiers: a TF-IDF-weighted bag of WordPiece unigrams and
hashed bigrams, computed in the graph from `input_ids` (no second tokenizer at serve time).

Features of a review: every token id and every adjacent pair `VOCAB + (a * VOCAB + b) mod
BIGRAM_BUCKETS`, each weighted by its inverse document frequency on the training reviews (0 for a
feature seen in fewer than `MIN_DF` of them, as TfidfVectorizer's `min_df`), the weights
L2-normalised per review. A task's logits are the weighted sum of one row per feature: a logistic
regression over the bag, fitted on `bag_matrix` (`text_heads`) and copied into `Lexical.table`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from export.text_data import VOCAB

__all__ = ["BIGRAM_BUCKETS", "MIN_DF", "Lexical", "bag_features", "bag_matrix", "fit_idf"]

BIGRAM_BUCKETS = 1 << 19
MIN_DF = 2
N_FEATURES = VOCAB + BIGRAM_BUCKETS


def bag_features(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(feature ids [B, 2T-1], present mask): unigrams, then hashed bigrams of non-pad pairs."""
    m = ids != 0
    bi = VOCAB + torch.remainder(ids[:, :-1] * VOCAB + ids[:, 1:], BIGRAM_BUCKETS)
    return torch.cat([ids, bi], 1), torch.cat([m, m[:, :-1] & m[:, 1:]], 1)


def fit_idf(ids: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Smoothed idf of every feature over the training reviews `ids`, 0 below `MIN_DF`."""
    df = np.zeros(N_FEATURES, np.int64)
    for i in range(0, len(ids), batch):
        f, m = bag_features(torch.tensor(ids[i : i + batch]))
        f, m = f.numpy(), m.numpy()
        rows = np.repeat(np.arange(len(f)), m.sum(1))
        pairs = np.unique(np.stack([rows, f[m]]), axis=1)  # each feature once per review
        df += np.bincount(pairs[1], minlength=N_FEATURES)
    idf = np.log((1 + len(ids)) / (1 + df)) + 1.0
    return np.where(df >= MIN_DF, idf, 0.0).astype(np.float32)


def bag_matrix(ids: np.ndarray, idf: np.ndarray, batch: int = 2048):
    """The sparse [n, N_FEATURES] matrix whose product with a table is `Lexical`'s output: a
    feature's weight is its count times its idf, over the norm of the per-position weights (as
    the graph computes it)."""
    from scipy import sparse

    idf_t = torch.tensor(idf)
    rows, cols, vals = [], [], []
    for i in range(0, len(ids), batch):
        f, m = bag_features(torch.tensor(ids[i : i + batch]))
        w = idf_t[f] * m.to(torch.float32)
        w = w / w.norm(dim=1, keepdim=True).clamp(min=1e-6)
        rows.append(np.repeat(np.arange(i, i + len(f)), f.shape[1]))
        cols.append(f.numpy().ravel())
        vals.append(w.numpy().ravel())
    x = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(ids), N_FEATURES),
    )
    x.sum_duplicates()
    x.eliminate_zeros()
    return x


class Lexical(nn.Module):
    """input_ids [B, T] (0 = pad) -> logits [B, n_out] of the TF-IDF bag (a linear model)."""

    def __init__(self, idf: np.ndarray, n_out: int):
        super().__init__()
        self.register_buffer("idf", torch.tensor(idf, dtype=torch.float32))
        self.table = nn.Embedding(N_FEATURES, n_out)
        nn.init.zeros_(self.table.weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        f, m = bag_features(ids)
        w = self.idf[f] * m.to(torch.float32)
        w = w / w.norm(dim=1, keepdim=True).clamp(min=1e-6)
        return (self.table(f) * w.unsqueeze(-1)).sum(1)
