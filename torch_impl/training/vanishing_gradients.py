r"""Vanishing gradients in PyTorch: a deep MLP of sigmoid, tanh or ReLU layers, with and without
batch normalization and residual connections; autograd does the backward.

    a_k = x_k W_k^T + b_k,   z_k = BN(a_k) (optional),   h_k = f(z_k)
    x_{k+1} = h_k (plain)   or   x_k + h_k (residual)

Every layer input x_k keeps its gradient (``retain_grad``), so dL/dx_k can be set beside the
NumPy twin's hand-propagated one, layer by layer.
"""
from __future__ import annotations

import torch
from torch import nn

from torch_impl.layers.activations import ReLU, Sigmoid, Tanh
from torch_impl.layers.batchnorm import BatchNorm1d
from torch_impl.layers.linear import Linear

ACTIVATIONS = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU}


class Layer(nn.Module):
    """x -> f(BN(fc(x))) (BN optional), plus x itself when ``residual``."""

    def __init__(self, features: int, activation: str = "tanh", batchnorm: bool = False,
                 residual: bool = False) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.residual = residual
        self.fc = Linear(features, features)
        self.bn = BatchNorm1d(features) if batchnorm else None
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc(x)                                 # (B, F)
        if self.bn is not None:
            z = self.bn(z)
        h = self.act(z)
        return x + h if self.residual else h


class DeepMLP(nn.Module):
    """``depth`` Layers of width ``features``."""

    def __init__(self, features: int, depth: int = 10, activation: str = "tanh",
                 batchnorm: bool = False, residual: bool = False) -> None:
        super().__init__()
        self.depth = depth
        self.layers = nn.ModuleList([Layer(features, activation, batchnorm, residual)
                                     for _ in range(depth)])
        self.intermediates: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.intermediates = {}
        for k, layer in enumerate(self.layers):
            if x.requires_grad:
                x.retain_grad()                        # keep dL/dx_k after backward
            self.intermediates[f"layer{k}.input"] = x
            x = layer(x)
        return x


def gradient_norms(model: DeepMLP) -> tuple[torch.Tensor, torch.Tensor]:
    """After backward: ||dL/dx_k|| and ||dL/dW_k|| for k = 0 .. depth-1."""
    inputs = torch.stack([model.intermediates[f"layer{k}.input"].grad.norm()
                          for k in range(model.depth)])
    weights = torch.stack([layer.fc.weight.grad.norm() for layer in model.layers])
    return inputs, weights
