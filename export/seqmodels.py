"""Next-item models over item-index sequences: a SASRec-style causal transformer.

Conventions: inside the models token 0 is padding and item j is token j + 1. The exported query
encoder takes item indices (0..N-1) padded with -1 and adds 1 itself, so the server and the
retrieval kernels only ever see item indices. Scores are `user_vector @ item_embeddings.T`
(the output layer is tied to the input item embeddings, plus a per-item bias carried as the
last column of the served item matrix and a constant 1 in the user vector).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SASRec", "QueryEncoder", "last_valid_index"]


class _Block(nn.Module):
    """Pre-norm causal self-attention + MLP, written out so it exports and quantizes (MatMul)."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.drop = nn.Dropout(dropout)

    def _attend(self, q, k, v, bias):
        """q [B, Tq, d], k and v [B, T, d], bias (0 or -1e9) broadcast to [B, Tq, T]."""
        d = q.shape[2]
        hd = d // self.heads
        if self.heads == 1:  # no head split: fewer reshapes in the exported graph
            att = (q @ k.transpose(1, 2)) * (1.0 / math.sqrt(hd)) + bias
            return self.drop(att.softmax(-1)) @ v
        b, tq, t = q.shape[0], q.shape[1], k.shape[1]
        q = q.reshape(b, tq, self.heads, hd).transpose(1, 2)
        k, v = (z.reshape(b, t, self.heads, hd).transpose(1, 2) for z in (k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd)) + bias.unsqueeze(1)
        return (self.drop(att.softmax(-1)) @ v).transpose(1, 2).reshape(b, tq, d)

    def forward(self, x, bias):
        d = x.shape[2]
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        x = x + self.drop(self.proj(self._attend(q, k, v, bias)))
        return x + self.drop(self.mlp(self.ln2(x)))

    def last(self, x, select, pad_bias):
        """The block's output at one position per row (inference): x [B, T, d], select [B, 1, T]
        one-hot of that position (every earlier one is visible to it), pad_bias [B, 1, T]
        -> [B, 1, d]. Keys and values for every position, the query and MLP for one."""
        d = self.proj.in_features  # a constant: the weight slices fold away in ONNX Runtime
        h = self.ln1(x)
        k, v = F.linear(h, self.qkv.weight[d:], self.qkv.bias[d:]).split(d, dim=2)
        q = F.linear(select @ h, self.qkv.weight[:d], self.qkv.bias[:d])
        x = select @ x + self.proj(self._attend(q, k, v, pad_bias))
        return x + self.mlp(self.ln2(x))


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
        # a per-item score bias: set to log popularity, an untrained model ranks as the
        # popularity baseline does and training starts from there
        self.bias = nn.Parameter(torch.zeros(n_items))
        # small position embeddings: at N(0, 1) they drown the item signal and training stalls
        nn.init.normal_(self.item.weight, std=0.1)
        nn.init.normal_(self.pos.weight, std=0.02)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def _embed(self, tokens):
        return self.drop(self.item(tokens) + self.pos.weight[: tokens.shape[1]])

    @staticmethod
    def _causal_bias(tokens):
        t = tokens.shape[1]
        causal = torch.triu(torch.ones(t, t, device=tokens.device, dtype=torch.bool), diagonal=1)
        blocked = causal.unsqueeze(0) | (tokens == 0).unsqueeze(1)  # later steps and pads
        return torch.zeros(blocked.shape, device=tokens.device).masked_fill(blocked, -1e9)

    def hidden(self, tokens):
        """tokens [B, T] int64 (0 = pad) -> hidden states [B, T, d]."""
        x = self._embed(tokens)
        bias = self._causal_bias(tokens)
        for blk in self.blocks:
            x = blk(x, bias)
        return self.ln(x)

    def last_hidden(self, tokens):
        """tokens [B, T] int64 (0 = pad) -> the hidden state [B, d] at each row's last item:
        `hidden(tokens)` there, without the positions nothing reads (the last block runs one
        query position; a one-block model needs no causal mask). Written for a small exported
        graph: the last item is selected by a one-hot row (cumsum), not a gather with indices."""
        x = self._embed(tokens)
        if len(self.blocks) > 1:
            bias = self._causal_bias(tokens)
            for blk in self.blocks[:-1]:
                x = blk(x, bias)
        valid = (tokens > 0).float()
        select = valid * (valid.cumsum(1) == valid.sum(1, keepdim=True)).float()
        pad_bias = (valid - 1.0) * 1e9
        h = self.blocks[-1].last(x, select.unsqueeze(1), pad_bias.unsqueeze(1))
        return self.ln(h).flatten(1)

    def item_matrix(self):
        return self.item.weight[1:]

    def logits(self, hidden):
        """hidden [..., d] -> scores over the catalogue [..., n_items] (tied embeddings + bias)."""
        return hidden @ self.item_matrix().T + self.bias

    def served_items(self):
        """[n_items, d + 1]: item embeddings with the bias as a last column, so that
        `QueryEncoder`'s [hidden, 1] . row is `logits` (a plain inner product for retrieval)."""
        return torch.cat([self.item_matrix(), self.bias[:, None]], 1)

    def forward(self, tokens):
        return self.logits(self.hidden(tokens))


def last_valid_index(tokens):
    """Position of the last non-pad token per row (works for left or right padding)."""
    t = tokens.shape[1]
    pos = torch.arange(t, device=tokens.device).unsqueeze(0).expand_as(tokens)
    return torch.where(tokens > 0, pos, torch.zeros_like(pos)).max(dim=1).values


class QueryEncoder(nn.Module):
    """history [B, T] item indices, -1 = pad (right) -> user vector [B, d + 1]: SASRec's hidden
    state at the last item (`SASRec.last_hidden`: teacher and student export through the same
    code) and a 1 that meets the item bias in `SASRec.served_items`."""

    def __init__(self, model: SASRec):
        super().__init__()
        self.model = model

    def forward(self, history):
        h = self.model.last_hidden(torch.clamp(history + 1, min=0))
        return torch.cat([h, torch.ones_like(h[:, :1])], 1)
