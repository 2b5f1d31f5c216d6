"""Next-item models over item-index sequences: SASRec-style causal transformer and the seed's LSTM.

Conventions: inside the models token 0 is padding and item j is token j + 1. The exported query
encoder takes item indices (0..N-1) padded with -1 and adds 1 itself, so the server and the
retrieval kernels only ever see item indices. Scores are `user_vector @ item_embeddings.T`
(the output layer is tied to the input item embeddings).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SASRec", "SeedLSTM", "QueryEncoder", "last_valid_index"]


class _Block(nn.Module):
    """Pre-norm causal self-attention + MLP, written out so it exports and quantizes (MatMul)."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, attn_bias):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        hd = d // self.heads
        q, k, v = (z.reshape(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd)) + attn_bias
        y = (self.drop(att.softmax(-1)) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.mlp(self.ln2(x)))


class SASRec(nn.Module):
    def __init__(
        self, n_items: int, d: int, layers: int, heads: int, max_len: int, dropout: float = 0.2
    ):
        super().__init__()
        self.n_items, self.max_len = n_items, max_len
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(_Block(d, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)
        # small position embeddings: at N(0, 1) they drown the item signal and training stalls
        nn.init.normal_(self.item.weight, std=0.1)
        nn.init.normal_(self.pos.weight, std=0.02)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def hidden(self, tokens):
        """tokens [B, T] int64 (0 = pad) -> hidden states [B, T, d]."""
        t = tokens.shape[1]
        pos = torch.arange(t, device=tokens.device)
        x = self.drop(self.item(tokens) + self.pos(pos))
        causal = torch.triu(torch.ones(t, t, device=tokens.device, dtype=torch.bool), diagonal=1)
        blocked = causal.unsqueeze(0) | (tokens == 0).unsqueeze(1)  # later steps and pads
        bias = torch.zeros(blocked.shape, device=tokens.device).masked_fill(blocked, -1e9)
        bias = bias.unsqueeze(1)  # [B, 1, T, T]: the same for every head
        for blk in self.blocks:
            x = blk(x, bias)
        return self.ln(x)

    def item_matrix(self):
        return self.item.weight[1:]

    def forward(self, tokens):
        return self.hidden(tokens) @ self.item_matrix().T


class SeedLSTM(nn.Module):
    """The seed article's model: item embedding -> one LSTM layer -> dense softmax over products."""

    def __init__(self, n_items: int, d: int, hidden: int, dropout: float = 0.2):
        super().__init__()
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.lstm = nn.LSTM(d, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_items)

    def hidden(self, tokens):
        h, _ = self.lstm(self.drop(self.item(tokens)))
        return self.drop(h)

    def forward(self, tokens):
        return self.out(self.hidden(tokens))


def last_valid_index(tokens):
    """Position of the last non-pad token per row (works for left or right padding)."""
    t = tokens.shape[1]
    pos = torch.arange(t, device=tokens.device).unsqueeze(0).expand_as(tokens)
    return torch.where(tokens > 0, pos, torch.zeros_like(pos)).max(dim=1).values


class QueryEncoder(nn.Module):
    """history [B, T] item indices, -1 = pad -> user vector [B, d] (SASRec's last hidden state)."""

    def __init__(self, model: SASRec):
        super().__init__()
        self.model = model

    def forward(self, history):
        tokens = torch.clamp(history + 1, min=0)
        h = self.model.hidden(tokens)
        idx = last_valid_index(tokens)
        return torch.gather(h, 1, idx.view(-1, 1, 1).expand(-1, 1, h.shape[2])).squeeze(1)
