r"""Activation functions in PyTorch: each forward written out with tensor ops, autograd does the
backward.

    ReLU      y = x where x > 0, else 0        (autograd: 1 where x > 0, 0 elsewhere -- also at 0)
    Tanh      y = sign(x) (1 - e^{-2|x|}) / (1 + e^{-2|x|})   (written from the formula, so that
              the witness nn.Tanh checks another computation; e^{-2|x|} - 1 through expm1:
              no overflow for huge |x|, no cancellation near 0)
    Sigmoid   y = 1 / (1 + e^{-x}), through e^{-|x|} so that |x| ~ 1e4 cannot overflow
    GELU      y = x Φ(x) = x (1 + erf(x / √2)) / 2, or the tanh approximation
              y = x (1 + tanh(√(2/π) (x + 0.044715 x³))) / 2
    Softmax     y = e^{x - m} / Σ e^{x - m}       along dim, m = max x (detached: softmax is
    LogSoftmax  y = x - m - log Σ e^{x - m}       shift-invariant, so m carries no gradient)

The functions ``softmax``, ``log_softmax`` and ``softplus`` are the building blocks other torch
twins import (the losses use ``log_softmax`` and ``softplus``).
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_KAPPA = 0.044715


def _exp_minus_abs(x: torch.Tensor) -> torch.Tensor:
    """e^{-|x|} in (0, 1]: never overflows. -|x| is written as a `where` because autograd gives
    abs a derivative of 0 at x = 0; the branch x >= 0 -> -x has the right one there."""
    return torch.exp(torch.where(x >= 0, -x, x))


def softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """e^{x - m} / Σ e^{x - m} along ``dim``; m = max x, detached (softmax is shift-invariant)."""
    e = torch.exp(x - x.amax(dim=dim, keepdim=True).detach())
    return e / e.sum(dim=dim, keepdim=True)


def log_softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x - m - log Σ e^{x - m} along ``dim``; m = max x, detached."""
    shifted = x - x.amax(dim=dim, keepdim=True).detach()
    return shifted - torch.exp(shifted).sum(dim=dim, keepdim=True).log()


def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x) = max(x, 0) + log(1 + e^{-|x|}), as a `where` of the two smooth branches
    (clamp and abs would give autograd the derivative 1 at x = 0 instead of sigmoid(0) = 1/2)."""
    tail = torch.log1p(_exp_minus_abs(x))
    return torch.where(x >= 0, x + tail, tail)


def _implicit_dim(name: str, ndim: int) -> int:
    """torch's (deprecated) choice when ``dim=None``: 0 for 0-, 1- and 3-d input, else 1."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  "Change the call to include dim=X as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


class ReLU(nn.Module):
    """Same constructor as ``torch.nn.ReLU``."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # `where`/`masked_fill`, not clamp(min=0): clamp's autograd passes gradient 1 at x == 0,
        # torch.relu's passes 0; masking sends the gradient at 0 to the constant, i.e. nowhere.
        if self.inplace:
            return x.masked_fill_(~(x > 0), 0.0)
        return torch.where(x > 0, x, torch.zeros_like(x))


class Tanh(nn.Module):
    """Same constructor as ``torch.nn.Tanh``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positive = x >= 0
        a = torch.where(positive, x, -x)            # |x| with slope 1 at 0 (abs has slope 0)
        m = torch.expm1(-2.0 * a)                   # e^{-2|x|} - 1, in (-1, 0]
        sign = torch.where(positive, 1.0, -1.0).to(x.dtype)
        return sign * (-m / (2.0 + m))              # (1 - e^{-2|x|}) / (1 + e^{-2|x|})


class Sigmoid(nn.Module):
    """Same constructor as ``torch.nn.Sigmoid``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = _exp_minus_abs(x)
        return torch.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class GELU(nn.Module):
    """Same constructor as ``torch.nn.GELU``: ``approximate`` is "none" or "tanh"."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.approximate == "tanh":
            u = _SQRT_2_OVER_PI * (x + _GELU_KAPPA * x * x * x)
            return 0.5 * x * (1.0 + torch.tanh(u))
        return 0.5 * x * (1.0 + torch.erf(x * _SQRT1_2))


class Softmax(nn.Module):
    """Same constructor as ``torch.nn.Softmax``; ``dim=None`` follows torch's implicit rule."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = _implicit_dim("softmax", x.dim()) if self.dim is None else self.dim
        return softmax(x, dim)


class LogSoftmax(nn.Module):
    """Same constructor as ``torch.nn.LogSoftmax``; ``dim=None`` follows torch's implicit rule."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = _implicit_dim("log_softmax", x.dim()) if self.dim is None else self.dim
        return log_softmax(x, dim)
