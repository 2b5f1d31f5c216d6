"""A user's own model for `shopserve export model` tests: importable as tests.export.toy_models:make_mlp."""

from __future__ import annotations

import torch
from torch import nn


def make_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)
    )
