r"""Layer normalization in PyTorch: the forward is written out, autograd does the rest.

    mu   = mean(x),  var = mean((x - mu)^2)        over the trailing normalized_shape dims
    xhat = (x - mu) / sqrt(var + eps)
    y    = gamma * xhat + beta

Same constructor, parameters and initialization (gamma = 1, beta = 0) as ``torch.nn.LayerNorm``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LayerNorm(nn.Module):
    """Same constructor and parameter names as ``torch.nn.LayerNorm``."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(n) for n in normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.empty(self.normalized_shape))
            self.bias = nn.Parameter(torch.empty(self.normalized_shape)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.normalized_shape)
        if x.dim() < k or tuple(x.shape[x.dim() - k:]) != self.normalized_shape:
            expected = ", ".join(str(n) for n in self.normalized_shape)
            raise RuntimeError(
                f"Given normalized_shape={list(self.normalized_shape)}, expected input with "
                f"shape [*, {expected}], but got input of size{list(x.shape)}")
        dims = tuple(range(-k, 0))                                 # the normalized dims
        mean = x.mean(dim=dims, keepdim=True)                      # (*, 1, ..., 1)
        centered = x - mean
        var = (centered * centered).mean(dim=dims, keepdim=True)   # biased variance
        xhat = centered * torch.rsqrt(var + self.eps)              # (*, *normalized_shape)
        y = xhat if self.weight is None else xhat * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, " \
               f"elementwise_affine={self.elementwise_affine}"
