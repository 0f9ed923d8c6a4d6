r"""Linear (fully connected) layer in PyTorch: the forward is written out, autograd does the rest.

    y = x W^T + b        x: (*, in), W: (out, in), b: (out,)

Initialization as ``torch.nn.Linear``: W and b ~ U(-1/sqrt(in), 1/sqrt(in)).
"""
from __future__ import annotations

import math

import torch
from torch import nn


class Linear(nn.Module):
    """Same constructor, parameter names and layout as ``torch.nn.Linear``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.weight.T                          # (*, out)
        if self.bias is not None:
            y = y + self.bias
        return y
