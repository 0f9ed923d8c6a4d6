r"""Layer normalization, forward and backward by hand.

Each sample is standardized over its trailing ``normalized_shape`` dimensions (M elements),
then scaled and shifted elementwise -- torch.nn.LayerNorm:

    mu    = mean(x)                                over the normalized dims
    var   = mean((x - mu)^2)                       biased: divide by M, not M - 1
    r     = 1 / sqrt(var + eps)
    xhat  = (x - mu) r
    y     = gamma * xhat + beta                    gamma, beta: normalized_shape

Backward, given g = dL/dy. The affine step is elementwise:

    dL/dgamma = sum over the leading dims of g * xhat
    dL/dbeta  = sum over the leading dims of g
    dxhat     = g * gamma

Standardizing couples the M elements of a sample, because mu and var depend on all of them.
With S = sum_j (over the normalized dims):

    dL/dvar = S(dxhat (x - mu)) * (-1/2) r^3
    dL/dmu  = -r S(dxhat)                          (the var path adds S(-2 (x - mu))/M = 0)
    dL/dx   = r dxhat + dL/dvar * 2 (x - mu) / M + dL/dmu / M

which, writing x - mu = xhat / r, collapses to one line:

    dL/dx = r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))

The three terms: the direct path through x, the path through mu, the path through var.
A row of identical values has x - mu ~ 0 and var ~ 0, so r = 1/sqrt(eps) stays finite
(eps is why): y = beta and dL/dx = r (dxhat - mean(dxhat)).

``standardize`` (``moments`` then ``normalize``, with x - mu formed once) and
``standardize_backward`` take the reduced axes as an argument: BatchNorm uses the same steps
over the batch axes instead of the feature axes. Sums of products such as S(dxhat * xhat) go
through ``sum_of_products`` (einsum), which never holds the full-size product in memory; the
backward builds dL/dx in one array, in place.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from numpy_impl import random
from numpy_impl.layers.activations import sum_of_products
from numpy_impl.module import Module, Parameter


# --- standardization over any axes: shared with BatchNorm ----------------------------------
def moments(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and biased variance over ``axes``, kept as size-1 dims so they broadcast."""
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean                                       # two passes: no cancellation
    var = sum_of_products(centered, centered, axes) / _count(x, axes)
    return mean, var


def normalize(x: np.ndarray, mean: np.ndarray, var: np.ndarray,
              eps: float) -> tuple[np.ndarray, np.ndarray]:
    """xhat = (x - mean) r with r = 1/sqrt(var + eps); returns (xhat, r)."""
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = x - mean
    xhat *= rstd
    return xhat, rstd


def standardize(x: np.ndarray, axes: tuple[int, ...],
                eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``moments`` then ``normalize`` with x - mean formed once: (xhat, r, mean, var)."""
    mean = x.mean(axis=axes, keepdims=True)
    xhat = x - mean                                           # x - mu (float, as mean)
    var = sum_of_products(xhat, xhat, axes) / _count(x, axes)  # mean((x - mu)^2)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat *= rstd                                              # (x - mu) r, in place
    return xhat, rstd, mean, var


def standardize_backward(dxhat: np.ndarray, xhat: np.ndarray, rstd: np.ndarray,
                         axes: tuple[int, ...]) -> np.ndarray:
    """dL/dx when mean and var were computed from x itself over ``axes``:
    r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))."""
    through_mean = dxhat.mean(axis=axes, keepdims=True)                    # mean(dxhat)
    through_var = sum_of_products(dxhat, xhat, axes) / _count(xhat, axes)  # mean(dxhat xhat)
    dx = xhat * -through_var                                  # the path through var
    dx += dxhat                                               # + the direct path
    dx -= through_mean                                        # + the path through mu
    dx *= rstd                                                # all three times r: x's shape
    return dx


def _count(x: np.ndarray, axes: tuple[int, ...]) -> int:
    """M, the number of values each statistic is taken over."""
    return int(np.prod([x.shape[axis] for axis in axes]))


# --- layer normalization ----------------------------------------------------------------------
def layernorm_forward(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                      normalized_ndim: int, eps: float = 1e-5):
    """Normalize over the last ``normalized_ndim`` dims, then y = gamma xhat + beta."""
    axes = tuple(range(x.ndim - normalized_ndim, x.ndim))         # the normalized dims
    xhat, rstd, _, _ = standardize(x, axes, eps)                  # (*, *normalized_shape)
    if weight is not None:
        y = xhat * weight                                         # a new array: xhat is cached
        if bias is not None:
            y += bias
    else:
        y = xhat if bias is None else xhat + bias
    return y, (xhat, rstd, axes, weight, bias is not None)


def layernorm_backward(dy: np.ndarray, cache):
    """Returns (dx, dgamma, dbeta); dgamma / dbeta are None where there is no such parameter."""
    xhat, rstd, axes, weight, has_bias = cache
    leading = tuple(range(dy.ndim - len(axes)))                   # the dims gamma is shared over
    dweight = sum_of_products(dy, xhat, leading).reshape(xhat.shape[len(leading):]) \
        if weight is not None else None                           # y = gamma xhat
    dbias = dy.sum(axis=leading) if has_bias else None                       # y = ... + beta
    dxhat = dy if weight is None else dy * weight                 # chain rule through gamma xhat
    dx = standardize_backward(dxhat, xhat, rstd, axes)            # through mu and var into x
    return dx, dweight, dbias


def _as_shape(normalized_shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(normalized_shape, (int, np.integer)):
        return (int(normalized_shape),)
    return tuple(int(n) for n in normalized_shape)


def check_trailing_shape(shape: tuple[int, ...], normalized_shape: tuple[int, ...]) -> None:
    """torch's error (RuntimeError, same words) when x does not end in ``normalized_shape``."""
    k = len(normalized_shape)
    if len(shape) < k or tuple(shape[len(shape) - k:]) != normalized_shape:
        expected = ", ".join(str(n) for n in normalized_shape)
        raise RuntimeError(
            f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
            f"[*, {expected}], but got input of size{list(shape)}")


class LayerNorm(Module):
    """``torch.nn.LayerNorm``: standardize over the trailing ``normalized_shape`` dims."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = float(eps)  # a Python float: it must not promote float32 arrays
        self.elementwise_affine = elementwise_affine
        dtype = random.default_dtype()
        # torch's init: gamma = 1, beta = 0, so a fresh layer is pure standardization
        self.weight = Parameter(np.ones(self.normalized_shape, dtype)) \
            if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype)) \
            if elementwise_affine and bias else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_trailing_shape(x.shape, self.normalized_shape)
        y, self._cache = layernorm_forward(
            x, None if self.weight is None else self.weight.data,
            None if self.bias is None else self.bias.data, len(self.normalized_shape), self.eps)
        return y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dx, dweight, dbias = layernorm_backward(grad_output, self._cache)
        if self.weight is not None:
            self.weight.grad += dweight                           # accumulate, as autograd does
        if self.bias is not None:
            self.bias.grad += dbias
        return dx

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, " \
               f"elementwise_affine={self.elementwise_affine}"
