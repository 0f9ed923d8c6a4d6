r"""Dropout (inverted dropout), forward and backward by hand.

In training each element is kept with probability 1 - p and the kept ones are scaled up, so
the expected output equals the input and eval needs no rescaling -- torch.nn.Dropout:

    m ~ Bernoulli(1 - p)        elementwise, True = keep
    y = x * m / (1 - p)         training;   p = 1: y = 0 (every element dropped)
    y = x                       eval (and p = 0)

Backward, given g = dL/dy: the mask is a constant of the forward pass, so

    dL/dx = g * m / (1 - p)     training;   0 for p = 1;   g in eval

The mask is an input: ``forward(x, mask)`` replays a given mask (True = keep), which is how
the comparison hands both twins the same randomness; with ``mask=None`` the layer draws its
own from ``numpy_impl.random``. A bool mask gets no gradient: backward returns dL/dx only.
"""
from __future__ import annotations

import numpy as np

from numpy_impl import random
from numpy_impl.module import Module


def check_probability(p: float) -> None:
    """torch's ValueError (same words) for a drop probability outside [0, 1]."""
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def dropout_forward(x: np.ndarray, mask: np.ndarray, p: float):
    """y = x * m / (1 - p); p = 1 drops everything. Returns (y, cache)."""
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)        # a Python float keeps x's dtype
    y = x * mask * scale                               # x's shape; bool mask promotes to x's dtype
    return y, (mask, scale)


def dropout_backward(dy: np.ndarray, cache) -> np.ndarray:
    """dL/dx = g * m / (1 - p): the same mask and scale, applied to the upstream gradient."""
    mask, scale = cache
    return dy * mask * scale


class Dropout(Module):
    """``torch.nn.Dropout``, whose forward also accepts the mask to apply (True = keep)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        check_probability(p)
        self.p = float(p)
        self.inplace = inplace

    def forward(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        if not self.training:
            self._cache = None                         # identity: nothing to remember
            return x
        if mask is None:
            mask = random.generator().random(x.shape) < 1.0 - self.p   # P(keep) = 1 - p
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != x.shape:
            raise ValueError(f"mask shape {mask.shape} does not match input shape {x.shape}")
        y, self._cache = dropout_forward(x, mask, self.p)
        if self.inplace:
            x[...] = y                                 # torch's inplace=True overwrites x
            return x
        return y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        if self._cache is None:                        # eval: dL/dx = g
            return grad_output
        return dropout_backward(grad_output, self._cache)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
