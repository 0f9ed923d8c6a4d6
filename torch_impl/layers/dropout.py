r"""Dropout (inverted dropout) in PyTorch: the forward is written out, autograd does the rest.

    m ~ Bernoulli(1 - p),   y = x * m / (1 - p)      training (p = 1: y = 0)
    y = x                                           eval

Same constructor as ``torch.nn.Dropout``; ``forward(x, mask)`` also replays a given mask
(True = keep), which is how the comparison hands both twins the same randomness.
"""
from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Module):
    """``torch.nn.Dropout`` with an optional mask argument (True = keep)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training:
            return x
        if mask is None:
            mask = torch.bernoulli(torch.full_like(x, 1.0 - self.p)).bool()  # P(keep) = 1 - p
        if mask.shape != x.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match input shape "
                             f"{tuple(x.shape)}")
        scale = 0.0 if self.p == 1 else 1.0 / (1.0 - self.p)
        if self.inplace:
            return x.mul_(mask).mul_(scale)
        return x * mask * scale

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
