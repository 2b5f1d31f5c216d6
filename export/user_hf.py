"""A Hugging Face encoder as one exportable module (torch): `shopserve export model --hf`."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["HFEncoder"]


class HFEncoder(nn.Module):
    """input_ids (0 = pad; the mask is computed in-graph) -> last_hidden_state or mean embedding."""

    def __init__(self, base: nn.Module, pooling: str | None):
        super().__init__()
        self.base = base
        self.pooling = pooling

    def forward(self, input_ids):
        mask = (input_ids != 0).to(torch.float32)
        h = self.base(input_ids=input_ids, attention_mask=mask).last_hidden_state
        if self.pooling != "mean":
            return h
        return (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
