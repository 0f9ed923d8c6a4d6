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

- sigmoid 1 / (1 + e^{-x}) lets e^{-x} overflow to inf for x << 0: 1 / (1 + inf) = 0 is the
  right limit, so |x| ~ 1e4 gives 0 or 1 without a warning;
- softmax and log_softmax subtract m = max_j x_j first. Both are shift-invariant
  (softmax(x - c) = softmax(x) for any constant c), so m gets no gradient: exact, not an
  approximation;
- erf (NumPy has none) is W. J. Cody's rational Chebyshev approximation (see ``erf``):
      erf(x)  = x P_1(x²) / Q_1(x²)                       |x| < 0.46875
      erfc(x) = e^{-x²} P_2(|x|) / Q_2(|x|),  erf = sign(x) (1 - erfc(|x|))     otherwise
  with |x| clamped at 6, where erf is 1 to float64 rounding. Each array op runs on every
  element of its interval at once. Measured against ``math.erf`` on 1.24 million points (1M
  evenly over [-8, 8], 200k log-spaced over ±[1e-300, 1e-2], 40k around 0.46875 and 3.9-6.1):
  at most 5.6e-16 relative (5 ulp, at x = 0.469, where 1 - erfc doubles erfc's last-bit error)
  in float64; at most 3.3e-7 relative (5.5 ulp) in float32, computed in float32 throughout.

Speed without changing the formulas: GELU's forward keeps Φ(x) for its backward; softmax
works in place on its own output; sums such as Σ_j g_j y_j go through ``sum_of_products``
(einsum adds the products as it forms them: no full-size g * y); ``log_softmax_and_softmax``
gives cross-entropy both results from one e^{x - m}; erf and the GELU chains run on
cache-sized blocks (``blockwise``: the same numbers bit for bit, in about half the time); ReLU
is ``np.maximum`` and a product with the mask, branch-free.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

from numpy_impl.module import Module

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_KAPPA = 0.044715
_BLOCK = 1 << 16  # elements per block in ``blockwise``: 256 KiB of float32, 512 KiB of float64

# W. J. Cody, "Rational Chebyshev approximations for the error function", Mathematics of
# Computation 23 (1969) 631-637; the coefficients of his SPECFUN routine CALERF, written here
# highest degree first for Horner's rule (Q's leading coefficient is 1).
# Interval 1, |x| < 0.46875: erf(x) = x P1(x²) / Q1(x²).
_ERF_P1 = (1.85777706184603153e-1, 3.16112374387056560e00, 1.13864154151050156e02,
           3.77485237685302021e02, 3.20937758913846947e03)
_ERF_Q1 = (1.0, 2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
           2.84423683343917062e03)
# Interval 2, 0.46875 <= |x| <= 4: erfc(x) = e^{-x²} P2(x) / Q2(x). Cody's third interval
# (|x| > 4, an expansion in 1/x²) is left out: erf needs erfc there only to absolute 1e-16,
# and P2/Q2 carried on to |x| = 6 gives that (the worst error, above, is at x = 0.469). Nor
# is Cody's split of e^{-x²} into two factors needed: it makes erfc exact to the last bit for
# large x, and erf = 1 - erfc does not see those bits.
_ERFC_P2 = (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e00,
            6.61191906371416295e01, 2.98635138197400131e02, 8.81952221241769090e02,
            1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03)
_ERFC_Q2 = (1.0, 1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
            1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
            3.43936767414372164e03, 1.23033935480374942e03)
_ERF_SPLIT = 0.46875
_ERF_CUTOFF = 6.0  # erfc(6) = 2e-17 is below half an ulp of 1 in float64: erf(|x| >= 6) = 1


# --- elementwise building blocks ---------------------------------------------------------------
def _horner(t: np.ndarray, coefficients: tuple[float, ...]) -> np.ndarray:
    """c_0 t^n + c_1 t^(n-1) + ... + c_n (highest degree first) by Horner's rule, in t's
    dtype, in one new array."""
    if coefficients[0] == 1.0:                             # monic: one multiply saved
        p = t + coefficients[1]
    else:
        p = t * coefficients[0]
        p += coefficients[1]
    for c in coefficients[2:]:
        p *= t
        p += c
    return p


def blockwise(f: Callable[..., np.ndarray], *arrays: np.ndarray) -> np.ndarray:
    """f(*arrays) for an elementwise f, computed on blocks of ``_BLOCK`` elements.

    The result is the same bit for bit (each element sees the same operations), but a chain of
    many NumPy passes (erf's rational functions: ~30) then runs over temporaries that stay in
    the CPU's cache instead of going to main memory and back once per pass: erf of a (4096,
    1000) float32 array took about half the time. Arrays of different shapes (broadcasting)
    are passed whole.
    """
    shape = np.shape(arrays[0])
    if any(np.shape(a) != shape for a in arrays) or int(np.prod(shape)) <= _BLOCK:
        return f(*arrays)
    flats = [np.asarray(a).reshape(-1) for a in arrays]
    first = f(*(a[:_BLOCK] for a in flats))                # the result's dtype, from f itself
    out = np.empty(flats[0].size, dtype=first.dtype)
    out[:_BLOCK] = first
    for start in range(_BLOCK, out.size, _BLOCK):
        out[start:start + _BLOCK] = f(*(a[start:start + _BLOCK] for a in flats))
    return out.reshape(shape)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, in the dtype of ``x`` (float32 or float64)."""
    x = np.asarray(x)
    return blockwise(_erf_flat, x.reshape(-1)).reshape(x.shape)


def _erf_flat(flat: np.ndarray) -> np.ndarray:
    """erf of a 1-d array (see ``erf``)."""
    out = np.empty_like(flat)
    in_first = np.abs(flat) < _ERF_SPLIT                   # NaN compares False
    inner = np.flatnonzero(in_first)                       # Cody's interval 1
    outer = np.flatnonzero(~in_first)                      # the rest, NaN included
    # interval 1: erf(x) = x P1(x²) / Q1(x²)
    z = flat[inner]
    t = z * z
    ratio = _horner(t, _ERF_P1)
    ratio /= _horner(t, _ERF_Q1)
    ratio *= z
    out[inner] = ratio
    # interval 2: erfc(|x|) = e^{-x²} P2(|x|) / Q2(|x|), erf = sign(x) (1 - erfc); the clamp
    # keeps inf out of P2 / Q2 (inf / inf) and leaves NaN as NaN
    signed = flat[outer]
    y = np.abs(signed)                                     # |x|
    np.minimum(y, _ERF_CUTOFF, out=y)
    erfc = _horner(y, _ERFC_P2)
    erfc /= _horner(y, _ERFC_Q2)
    y *= y
    np.negative(y, out=y)
    erfc *= np.exp(y, out=y)                               # e^{-y²}
    np.subtract(1.0, erfc, out=erfc)
    out[outer] = np.copysign(erfc, signed, out=erfc)
    return out


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0), as torch: -inf maps to 0 and NaN stays NaN. (``np.maximum`` is one
    branch-free pass; ``np.where`` on a random sign pattern was ten times slower.)"""
    return np.maximum(x, 0)


def relu_backward(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """g · 1[x > 0], as torch's threshold backward, where(x <= 0, 0, g): the subgradient 0 at
    x = 0, and g passes where x is NaN.

    The product with the mask is one branch-free pass; it differs from the ``where`` only where
    g is not finite (inf · 0 = NaN, where the ``where`` gives 0), which the sum then shows.
    """
    with np.errstate(invalid="ignore"):            # inf · 0: replaced just below
        dx = grad_y * np.logical_not(x <= 0)
    if not np.isfinite(dx.sum()):                  # rare: a non-finite g (or a sum overflowing)
        return np.where(x <= 0, 0, grad_y)
    dx += 0.0                                      # -0.0 (a negative g times 0) becomes 0.0
    return dx


def tanh_backward(grad_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """g (1 - y²) with y = tanh(x)."""
    return grad_y * (1.0 - y * y)


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + e^{-x}), in four passes over one array (``out`` if given, e.g. a slice of a
    gate buffer). For x << 0, e^{-x} overflows to inf and 1 / (1 + inf) = 0 is the limit:
    σ(x) is already below the smallest normal number there (x < -88.7 in float32, -709.8 in
    float64), so only denormals become 0. Both tails keep full relative accuracy (no
    1 - (...) cancellation, as 0.5 + 0.5 tanh(x / 2) would have for x << 0)."""
    if out is None:
        out = np.empty(np.shape(x), dtype=np.result_type(x, 1.0))
    np.negative(x, out=out)                            # -x
    with np.errstate(over="ignore"):                   # e^{-x} = inf is the right limit
        np.exp(out, out=out)                           # e^{-x}
    out += 1.0                                         # 1 + e^{-x}
    return np.reciprocal(out, out=out)                 # σ(x)


def sigmoid_backward(grad_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """g y (1 - y) with y = sigmoid(x)."""
    return grad_y * y * (1.0 - y)


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) = max(x, 0) + log(1 + e^{-|x|}): no overflow for any x; its derivative is
    sigmoid(x)."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Φ(x) = (1 + erf(x / √2)) / 2, the standard normal CDF."""
    return blockwise(_normal_cdf, x)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    cdf = erf(x * _SQRT1_2)
    cdf += 1.0
    cdf *= 0.5
    return cdf


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """x Φ(x) (exact) or its tanh approximation."""
    if approximate == "tanh":
        return blockwise(_gelu_tanh, x)
    return x * normal_cdf(x)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    u = _SQRT_2_OVER_PI * (x + _GELU_KAPPA * x * x * x)
    return 0.5 * x * (1.0 + np.tanh(u))


def gelu_backward(grad_y: np.ndarray, x: np.ndarray, approximate: str = "none",
                  cdf: np.ndarray | None = None) -> np.ndarray:
    """g f'(x): f' = Φ + x φ (exact), or the product and chain rule through tanh(u(x)).
    ``cdf``: Φ(x) as the forward computed it (else computed again)."""
    if approximate == "tanh":
        return blockwise(_gelu_tanh_backward, grad_y, x)
    if cdf is None:
        cdf = normal_cdf(x)                            # Φ(x)
    return blockwise(_gelu_backward, grad_y, x, cdf)


def _gelu_tanh_backward(grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_KAPPA * x * x * x))
    du_dx = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_KAPPA * x * x)
    return grad_y * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du_dx)


def _gelu_backward(grad_y: np.ndarray, x: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    # f'(x) = Φ(x) + x φ(x), φ(x) = e^{-x²/2} / √(2π), built in one array
    slope = x * x
    slope *= -0.5
    np.exp(slope, out=slope)                           # e^{-x²/2}
    slope *= _INV_SQRT_2PI                             # φ(x)
    slope *= x
    slope += cdf                                       # f'(x)
    slope *= grad_y                                    # chain rule: g f'(x)
    return slope


# --- along a dimension -------------------------------------------------------------------------
def sum_of_products(a: np.ndarray, b: np.ndarray, axes: int | tuple[int, ...]) -> np.ndarray:
    """Σ a b over ``axes`` (kept as size-1 dims so it broadcasts back), a and b of one shape.
    ``einsum`` adds up the products as it forms them: no full-size a * b in memory."""
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    if any(not -a.ndim <= axis < a.ndim for axis in axes):
        raise IndexError(f"dim {axes} out of range for a {a.ndim}-d array")
    axes = tuple(axis % a.ndim for axis in axes)
    letters = "abcdefghijklmnopqrstuvwxyz"[:a.ndim]
    kept = "".join(letter for i, letter in enumerate(letters) if i not in axes)
    return np.expand_dims(np.einsum(f"{letters},{letters}->{kept}", a, b), axes)


def _floating(x: np.ndarray) -> np.ndarray:
    """x itself when floating point; integers become float64 (as np.exp would make them)."""
    return x if np.issubdtype(x.dtype, np.inexact) else x.astype(np.float64)


def _shifted_exp(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x - m, e^{x - m}, Σ_j e^{x_j - m}) along ``dim``, m = max_j x_j: the shared first
    steps of softmax and log_softmax."""
    shifted = _floating(x - np.max(x, axis=dim, keepdims=True))  # <= 0: e^{x - m} <= 1
    e = np.exp(shifted)
    return shifted, e, np.sum(e, axis=dim, keepdims=True)


def softmax(x: np.ndarray, dim: int) -> np.ndarray:
    """e^{x_i - m} / Σ_j e^{x_j - m} along ``dim``, m = max_j x_j (a 0-d x is one element)."""
    x = np.asarray(x)
    if x.ndim == 0:  # torch accepts dim 0 or -1 on a scalar: softmax of one element is 1
        return softmax(x.reshape(1), dim).reshape(())
    y = _floating(x - np.max(x, axis=dim, keepdims=True))  # <= 0: e^{x - m} cannot overflow
    np.exp(y, out=y)                                   # e^{x_i - m}, in place
    y /= np.sum(y, axis=dim, keepdims=True)            # / Σ_j e^{x_j - m}
    return y


def softmax_backward(grad_y: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    """dL/dx_i = y_i (g_i - Σ_j g_j y_j): the Jacobian diag(y) - y yᵀ applied to g."""
    if np.ndim(y) == 0:
        return softmax_backward(np.reshape(grad_y, 1), np.reshape(y, 1), dim).reshape(())
    dx = grad_y - sum_of_products(grad_y, y, dim)      # g_i - Σ_j g_j y_j
    dx *= y
    return dx


def log_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    """x_i - m - log Σ_j e^{x_j - m} along ``dim``, m = max_j x_j."""
    x = np.asarray(x)
    if x.ndim == 0:
        return log_softmax(x.reshape(1), dim).reshape(())
    shifted, _, total = _shifted_exp(x, dim)
    shifted -= np.log(total)
    return shifted


def log_softmax_and_softmax(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(log_softmax(x), softmax(x)) along ``dim`` from one e^{x - m}: cross-entropy's forward
    needs the first, its backward the second."""
    x = np.asarray(x)
    if x.ndim == 0:
        logp, p = log_softmax_and_softmax(x.reshape(1), dim)
        return logp.reshape(()), p.reshape(())
    shifted, e, total = _shifted_exp(x, dim)
    shifted -= np.log(total)                           # log softmax
    e /= total                                         # softmax
    return shifted, e


def log_softmax_backward(grad_y: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    """dL/dx_i = g_i - softmax_i Σ_j g_j, with softmax = e^{y}."""
    if np.ndim(y) == 0:
        return log_softmax_backward(np.reshape(grad_y, 1), np.reshape(y, 1), dim).reshape(())
    dx = np.exp(y)                                     # softmax_i
    dx *= -np.sum(grad_y, axis=dim, keepdims=True)     # - softmax_i Σ_j g_j
    dx += grad_y
    return dx


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
    """``torch.nn.Sigmoid``: y = 1 / (1 + e^{-x}); e^{-x} = inf for x << 0 gives the limit 0."""

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
        if self.approximate == "tanh":
            return gelu(x, self.approximate)
        self._cdf = normal_cdf(x)                      # Φ(x): kept, backward needs it too
        return x * self._cdf

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        cdf = None if self.approximate == "tanh" else self._cdf
        return gelu_backward(grad_output, self._x, self.approximate, cdf)  # g f'(x)

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
