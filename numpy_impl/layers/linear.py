r"""Linear (fully connected) layer, forward and backward by hand.

Forward, for x of shape (*, in) and weight W of shape (out, in) -- torch's layout:

    y = x W^T + b                                  y: (*, out)

Backward, given g = dL/dy of shape (*, out), with the leading dimensions flattened to N rows:

    dL/dx = g W                                    (*, in)
    dL/dW = g^T x       (summed over all N rows)   (out, in)
    dL/db = sum_n g_n                              (out,)

Initialization as torch's: W and b ~ U(-1/sqrt(in), 1/sqrt(in)).
"""
from __future__ import annotations

import numpy as np

from numpy_impl import random
from numpy_impl.module import Module, Parameter


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None):
    """y = x W^T + b; returns (y, cache)."""
    y = x @ weight.T                                   # (*, out)
    if bias is not None:
        y = y + bias
    return y, (x, weight, bias is not None)


def linear_backward(dy: np.ndarray, cache):
    """Returns (dx, dW, db); db is None without a bias."""
    x, weight, has_bias = cache
    dx = dy @ weight                                   # (*, in)   chain rule through x W^T
    rows_dy = dy.reshape(-1, dy.shape[-1])             # (N, out)  every leading dim is a row
    rows_x = x.reshape(-1, x.shape[-1])                # (N, in)
    dweight = rows_dy.T @ rows_x                       # (out, in) sum over rows of g_n x_n^T
    dbias = rows_dy.sum(axis=0) if has_bias else None  # (out,)    b is added to every row
    return dx, dweight, dbias


class Linear(Module):
    """``torch.nn.Linear``: y = x W^T + b over the last dimension."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        bound = 1.0 / np.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = Parameter(random.uniform(-bound, bound, (out_features, in_features)))
        self.bias = Parameter(random.uniform(-bound, bound, (out_features,))) if bias else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, self._cache = linear_forward(x, self.weight.data,
                                        None if self.bias is None else self.bias.data)
        return y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dx, dweight, dbias = linear_backward(grad_output, self._cache)
        self.weight.grad += dweight                    # accumulate, as autograd does
        if self.bias is not None:
            self.bias.grad += dbias
        return dx

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}"
