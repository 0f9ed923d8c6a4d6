r"""Residual block vs plain block, and a stack of either, in PyTorch (autograd does backward).

    h = tanh(x W^T + b);   y = x + h (residual)  or  y = h (plain)        x, y: (*, F)
    Stack: x_{k+1} = block_k(x_k), k = 0 .. depth-1

Each block input x_k is kept with ``retain_grad()`` so that autograd's dL/dx_k can be set
beside the NumPy twin's hand-propagated one, block by block.
"""
from __future__ import annotations

import torch
from torch import nn

from torch_impl.layers.activations import Tanh
from torch_impl.layers.linear import Linear


class Block(nn.Module):
    """y = x + tanh(fc(x)) if ``residual`` else tanh(fc(x)); fc is Linear(features, features)."""

    def __init__(self, features: int, residual: bool = True) -> None:
        super().__init__()
        self.features = features
        self.residual = residual
        self.fc = Linear(features, features)
        self.act = Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc(x))                       # (*, F)
        return x + h if self.residual else h           # (*, F)

    def extra_repr(self) -> str:
        return f"features={self.features}, residual={self.residual}"


class Stack(nn.Module):
    """``depth`` Blocks in sequence (``blocks.0.fc.weight``, ...), all residual or all plain."""

    def __init__(self, features: int, depth: int = 10, residual: bool = True) -> None:
        super().__init__()
        self.features = features
        self.depth = depth
        self.residual = residual
        self.blocks = nn.ModuleList([Block(features, residual) for _ in range(depth)])
        self.intermediates: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.intermediates = {}
        for k, block in enumerate(self.blocks):
            if x.requires_grad:
                x.retain_grad()                        # keep dL/dx_k after backward
            self.intermediates[f"block{k}.input"] = x  # x_k, (*, F)
            x = block(x)                               # x_{k+1} = block_k(x_k)
        return x

    def extra_repr(self) -> str:
        return f"features={self.features}, depth={self.depth}, residual={self.residual}"
