r"""Activation functions, forward and backward by hand: ReLU, Tanh, Sigmoid, GELU, Softmax,
LogSoftmax -- plus the shared building blocks other files import (``softmax``, ``log_softmax``,
``sigmoid``, ``softplus``, ``erf`` and each one's backward).

Elementwise activations, y = f(x), backward dL/dx = g * f'(x) with g = dL/dy:

    ReLU      y = max(x, 0)                  f'(x) = 1 if x > 0 else 0   (0 at the kink, as torch)
    Tanh      y = tanh(x)                    f'(x) = 1 - y^2
    Sigmoid   y = 1 / (1 + e^{-x})           f'(x) = y (1 - y)
    GELU      y = x Φ(x),  Φ(x) = (1 + erf(x / √2)) / 2
                                             f'(x) = Φ(x) + x φ(x),  φ(x) = e^{-x²/2} / √(2π)
    GELU-tanh y = x (1 + t) / 2,  t = tanh(u),  u = √(2/π) (x + 0.044715 x³)
                                             f'(x) = (1 + t) / 2 + x (1 - t²) / 2 · du/dx,
                                             du/dx = √(2/π) (1 + 3 · 0.044715 x²)

Along a dimension d (every other index fixed):

    Softmax     y_i = e^{x_i} / Σ_j e^{x_j}     dL/dx_i = y_i (g_i - Σ_j g_j y_j)
    LogSoftmax  y_i = x_i - log Σ_j e^{x_j}     dL/dx_i = g_i - e^{y_i} Σ_j g_j

Numerical stability:

- sigmoid uses e^{-|x|} <= 1, never e^{+|x|}, so |x| ~ 1e4 cannot overflow;
- softmax and log_softmax subtract m = max_j x_j first. Both are shift-invariant
  (softmax(x - c) = softmax(x) for any constant c), so m gets no gradient: exact, not an
  approximation;
- erf (NumPy has none) is the all-positive series
      erf(z) = 2/√π e^{-z²} Σ_{n>=0} 2^n z^{2n+1} / (1·3·5···(2n+1))
  for |z| <= 6 and ±1 beyond (erfc(6) ≈ 2e-17 is below half an ulp of 1 in float64).
  No term cancels another, so rounding errors stay at a few ulps: about 2e-15 relative
  against ``math.erf`` in float64, 1e-6 in float32 (tests/layers/test_activations.py).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from numpy_impl.module import Module

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_KAPPA = 0.044715
_ERF_CUTOFF = 6.0
_ERF_MAX_TERMS = 200  # |z| <= 6 needs 96 terms in float64; the cap only guards the loop


# --- elementwise building blocks ---------------------------------------------------------------
def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, in the dtype of ``x`` (float32 or float64)."""
    x = np.asarray(x)
    eps = np.finfo(x.dtype).eps
    z = np.clip(x, -_ERF_CUTOFF, _ERF_CUTOFF)
    z2 = z * z
    term = z.copy()                                    # n = 0 term: z
    total = z.copy()
    # A loop over the series index, not over data: every element advances together and the
    # loop ends when the largest remaining term is negligible for every element.
    for n in range(1, _ERF_MAX_TERMS):
        term = (term * (2.0 * z2)) / (2 * n + 1)       # term_n = term_{n-1} · 2z² / (2n+1)
        total = total + term
        if not np.any(np.abs(term) > 0.25 * eps * np.abs(total)):  # NaN compares False: ends
            break
    series = _TWO_OVER_SQRT_PI * np.exp(-z2) * total
    return np.where(np.abs(x) > _ERF_CUTOFF, np.sign(x), series)


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0); ``where`` rather than a product so that -inf maps to 0, not NaN."""
    return np.where(x > 0, x, 0)


def relu_backward(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """g · 1[x > 0]: the subgradient 0 at x = 0, as torch's threshold backward."""
    return np.where(x > 0, grad_y, 0)


def tanh_backward(grad_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """g (1 - y²) with y = tanh(x)."""
    return grad_y * (1.0 - y * y)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^{-x}) through e = e^{-|x|} <= 1: 1/(1+e) for x >= 0, e/(1+e) for x < 0."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward(grad_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """g y (1 - y) with y = sigmoid(x)."""
    return grad_y * y * (1.0 - y)


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) = max(x, 0) + log(1 + e^{-|x|}): no overflow for any x; its derivative is
    sigmoid(x)."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """x Φ(x) (exact) or its tanh approximation."""
    if approximate == "tanh":
        u = _SQRT_2_OVER_PI * (x + _GELU_KAPPA * x * x * x)
        return 0.5 * x * (1.0 + np.tanh(u))
    return 0.5 * x * (1.0 + erf(x * _SQRT1_2))


def gelu_backward(grad_y: np.ndarray, x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """g f'(x): f' = Φ + x φ (exact), or the product and chain rule through tanh(u(x))."""
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_KAPPA * x * x * x))
        du_dx = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_KAPPA * x * x)
        return grad_y * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du_dx)
    cdf = 0.5 * (1.0 + erf(x * _SQRT1_2))             # Φ(x)
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)         # φ(x) = Φ'(x)
    return grad_y * (cdf + x * pdf)


# --- along a dimension -------------------------------------------------------------------------
def softmax(x: np.ndarray, dim: int) -> np.ndarray:
    """e^{x_i - m} / Σ_j e^{x_j - m} along ``dim``, m = max_j x_j (a 0-d x is one element)."""
    x = np.asarray(x)
    if x.ndim == 0:  # torch accepts dim 0 or -1 on a scalar: softmax of one element is 1
        return softmax(x.reshape(1), dim).reshape(())
    shifted = x - np.max(x, axis=dim, keepdims=True)   # <= 0: e^{shifted} cannot overflow
    e = np.exp(shifted)
    return e / np.sum(e, axis=dim, keepdims=True)


def softmax_backward(grad_y: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    """dL/dx_i = y_i (g_i - Σ_j g_j y_j): the Jacobian diag(y) - y yᵀ applied to g."""
    if np.ndim(y) == 0:
        return softmax_backward(np.reshape(grad_y, 1), np.reshape(y, 1), dim).reshape(())
    return y * (grad_y - np.sum(grad_y * y, axis=dim, keepdims=True))


def log_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    """x_i - m - log Σ_j e^{x_j - m} along ``dim``, m = max_j x_j."""
    x = np.asarray(x)
    if x.ndim == 0:
        return log_softmax(x.reshape(1), dim).reshape(())
    shifted = x - np.max(x, axis=dim, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))


def log_softmax_backward(grad_y: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    """dL/dx_i = g_i - softmax_i Σ_j g_j, with softmax = e^{y}."""
    if np.ndim(y) == 0:
        return log_softmax_backward(np.reshape(grad_y, 1), np.reshape(y, 1), dim).reshape(())
    return grad_y - np.exp(y) * np.sum(grad_y, axis=dim, keepdims=True)


def implicit_dim(name: str, ndim: int) -> int:
    """torch's (deprecated) choice when ``dim=None``: 0 for 0-, 1- and 3-d input, else 1."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  "Change the call to include dim=X as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


# --- modules -----------------------------------------------------------------------------------
class ReLU(Module):
    """``torch.nn.ReLU``: y = max(x, 0); ``inplace=True`` writes y into x."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x.copy() if self.inplace else x      # a copy: in place, x is overwritten
        if self.inplace:
            x[...] = relu(x)
            return x
        return relu(x)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return relu_backward(grad_output, self._x)     # chain rule: g · 1[x > 0]

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Tanh(Module):
    """``torch.nn.Tanh``: y = tanh(x)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(x)
        return self._y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return tanh_backward(grad_output, self._y)     # chain rule: g (1 - y²)


class Sigmoid(Module):
    """``torch.nn.Sigmoid``: y = 1 / (1 + e^{-x}), computed without overflow."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = sigmoid(x)
        return self._y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return sigmoid_backward(grad_output, self._y)  # chain rule: g y (1 - y)


class GELU(Module):
    """``torch.nn.GELU``: y = x Φ(x), or the tanh approximation with ``approximate="tanh"``."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return gelu(x, self.approximate)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return gelu_backward(grad_output, self._x, self.approximate)  # chain rule: g f'(x)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """``torch.nn.Softmax``: y = softmax(x) along ``dim`` (None: torch's implicit choice)."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._dim = implicit_dim("softmax", np.ndim(x)) if self.dim is None else self.dim
        self._y = softmax(x, self._dim)
        return self._y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return softmax_backward(grad_output, self._y, self._dim)  # g through diag(y) - y yᵀ

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """``torch.nn.LogSoftmax``: y = log softmax(x) along ``dim`` (None: torch's implicit choice)."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._dim = implicit_dim("log_softmax", np.ndim(x)) if self.dim is None else self.dim
        self._y = log_softmax(x, self._dim)
        return self._y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return log_softmax_backward(grad_output, self._y, self._dim)  # g - softmax Σ g

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
