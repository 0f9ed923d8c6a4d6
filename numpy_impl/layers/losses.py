r"""Loss functions, forward and backward by hand: MSELoss, NLLLoss, CrossEntropyLoss,
BCEWithLogitsLoss -- each with torch's ``reduction = "mean" | "sum" | "none"``.

Every loss first computes a loss per element l (shape S), then reduces it:

    none: L = l        sum: L = Σ l        mean: L = Σ l / D

with D = the number of elements, except for the class losses below (D = Σ of target weights).
Backward starts from g = dL/dL (a scalar for sum/mean, shape S for none): dL/dl = g, g, or g / D.

MSELoss, input x and target y of the same shape:

    l = (x - y)²                          dl/dx = 2 (x - y),   dl/dy = -2 (x - y)

NLLLoss, log-probabilities p of shape (N, C, d1, ...) (or (C,)), integer targets t of shape
(N, d1, ...) (or ()), class weights w (ones if not given), ignore_index i:

    v_n = 1[t_n != i]                     (ignored targets contribute nothing)
    l_n = -v_n w_{t_n} p_{n, t_n}         D = Σ_n v_n w_{t_n}
    dl_n/dp_{n,c} = -v_n w_{t_n} 1[c = t_n]

CrossEntropyLoss = LogSoftmax over the class dim, then NLL with label smoothing ε (torch's
formula: the smoothing term uses every class's weight and the same D as the NLL term):

    p = log_softmax(x)
    l_n = v_n [ (1 - ε) (-w_{t_n} p_{n,t_n}) + ε/C Σ_c (-w_c p_{n,c}) ]
    dl_n/dp_{n,c} = -v_n [ (1 - ε) w_{t_n} 1[c = t_n] + ε/C w_c ]
    dL/dx = log_softmax backward of dL/dp:  dL/dx_c = dL/dp_c - softmax_c Σ_k dL/dp_k

When every target is ignored, mean reduction gives 0/0 = NaN and a zero gradient, as torch.

BCEWithLogitsLoss, logits x, targets y in [0, 1] (soft targets allowed), element weights w,
positive-class weights q (broadcast along the last dim). With log σ(x) = -softplus(-x):

    l = w [ (1 - y) x + (1 + (q - 1) y) softplus(-x) ]
    dl/dx = w [ (1 - y) - (1 + (q - 1) y) σ(-x) ]         (softplus' = σ)
    dl/dy = w [ -x + (q - 1) softplus(-x) ]

softplus(z) = max(z, 0) + log(1 + e^{-|z|}) never overflows, so |x| ~ 1e4 is fine; so does
log_softmax (it subtracts the max).

Like torch, ``weight`` and ``pos_weight`` are buffers (in ``state_dict`` when given). The
deprecated ``size_average`` / ``reduce`` arguments of torch's constructors are left out; the
arguments after the first are keyword-only. Targets are class indices (CrossEntropyLoss's
class-probability targets are not covered), and MSELoss / BCEWithLogitsLoss need a target of
the input's shape (torch's MSELoss would broadcast one, with a warning).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from numpy_impl.layers.activations import log_softmax_and_softmax, sigmoid, softplus
from numpy_impl.module import Module, to_numpy
from numpy_impl.random import default_dtype

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction "
                         f"(expected one of {', '.join(REDUCTIONS)})")
    return reduction


def _float_buffer(value: Any) -> np.ndarray | None:
    """An array from anything array-like (a CPU torch tensor too), floating point."""
    if value is None:
        return None
    array = np.array(to_numpy(value), copy=True)
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(default_dtype())


def reduce(loss: np.ndarray, reduction: str, denominator: Any = None) -> np.ndarray:
    """none: l; sum: Σ l; mean: Σ l / D (D = the number of elements unless given)."""
    if reduction == "none":
        return loss
    total = np.sum(loss)
    if reduction == "sum":
        return total
    if denominator is None:
        denominator = loss.size
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 = NaN, as torch
        return total / denominator


def reduce_backward(grad: np.ndarray, shape: tuple[int, ...], reduction: str,
                    denominator: Any = None) -> np.ndarray:
    """dL/dl of shape ``shape``: g (none), g broadcast (sum), g / D broadcast (mean)."""
    grad = np.asarray(grad)
    if reduction == "mean":
        size = int(np.prod(shape)) if denominator is None else denominator
        # D = 0 only when nothing contributes (every target ignored): the gradient is 0, as
        # torch's, not 0 · (g / 0) = NaN.
        grad = grad / size if size != 0 else np.zeros_like(grad)
    return np.broadcast_to(grad, shape)


# --- MSELoss -----------------------------------------------------------------------------------
class MSELoss(Module):
    """``torch.nn.MSELoss``: mean (or sum, or none) of (input - target)²."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)

    def forward(self, input: np.ndarray, target: np.ndarray) -> np.ndarray:
        if np.shape(input) != np.shape(target):
            raise ValueError(f"MSELoss needs input and target of the same shape, got "
                             f"{np.shape(input)} and {np.shape(target)}")
        self._diff = input - target                    # x - y
        return reduce(self._diff * self._diff, self.reduction)

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dl = reduce_backward(grad_output, self._diff.shape, self.reduction)  # dL/dl
        dinput = 2.0 * self._diff * dl                 # chain rule: dl/dx = 2 (x - y)
        return dinput, -dinput                         # dl/dy = -dl/dx

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


# --- NLL with label smoothing: the shared core of NLLLoss and CrossEntropyLoss -----------------
def nll_forward(logp: np.ndarray, target: np.ndarray, weight: np.ndarray | None,
                ignore_index: int, reduction: str, label_smoothing: float = 0.0):
    """L from log-probabilities ``logp`` (class dim 1, or 0 for 1-d input); returns (L, cache)."""
    target = np.asarray(target)
    class_dim = 0 if logp.ndim == 1 else 1
    n_classes = logp.shape[class_dim]
    batch_shape = logp.shape[:class_dim] + logp.shape[class_dim + 1:]
    if np.shape(target) != batch_shape:
        raise ValueError(f"expected a target of shape {batch_shape} for input of shape "
                         f"{logp.shape} (the input without its class dim {class_dim}), "
                         f"got {np.shape(target)}")
    if not np.issubdtype(np.asarray(target).dtype, np.integer):
        raise TypeError(f"targets must be integer class indices, got dtype {target.dtype}")
    valid = target != ignore_index                     # v: (S,)
    out_of_range = valid & ((target < 0) | (target >= n_classes))
    if out_of_range.any():
        raise IndexError(f"Target {target[out_of_range].flat[0]} is out of bounds.")
    p = np.moveaxis(logp, class_dim, -1)               # (S, C) classes last
    safe = np.where(valid, target, 0)                  # any class index where ignored
    w = np.ones(n_classes, dtype=logp.dtype) if weight is None else weight.astype(logp.dtype)
    w_t = np.where(valid, w[safe], 0)                  # v w_t: (S,)
    picked = np.take_along_axis(p, safe[..., None], axis=-1)[..., 0]  # p_{n, t_n}: (S,)
    loss = -w_t * picked                               # (S,)
    if label_smoothing > 0.0:
        smooth = np.where(valid, -(p @ w), 0)          # Σ_c -w_c p_c: (S,), a matrix-vector
        loss = (1.0 - label_smoothing) * loss + (label_smoothing / n_classes) * smooth
    denominator = np.sum(w_t)                          # D = Σ v w_t
    cache = (class_dim, logp.shape, valid, safe, w, w_t, denominator, reduction, label_smoothing)
    return reduce(loss, reduction, denominator), cache


def nll_backward_parts(grad: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray | None]:
    """dL/dlogp in factored form, no (S, C) array: ``at_target`` (S,) and ``spread`` (S,) or
    None, with dL/dlogp[n, c] = at_target[n] 1[c = t_n] + spread[n] w_c."""
    class_dim, shape, valid, safe, w, w_t, denominator, reduction, label_smoothing = cache
    n_classes = shape[class_dim]
    dl = reduce_backward(grad, valid.shape, reduction, denominator)  # dL/dl_n: (S,)
    # chain rule through l_n = -v_n w_{t_n} p_{n, t_n}: only the target class gets gradient
    at_target = -(dl * w_t)                            # (S,)
    if label_smoothing == 0.0:
        return at_target, None
    # ... and through the smoothing term -v_n ε/C Σ_c w_c p_{n,c}: every class does
    spread = -np.where(valid, dl, 0) * (label_smoothing / n_classes)  # (S,), times w_c
    return (1.0 - label_smoothing) * at_target, spread


def nll_backward(grad: np.ndarray, cache) -> np.ndarray:
    """dL/dlogp, same shape as ``logp``."""
    class_dim, shape, valid, safe, w = cache[:5]
    at_target, spread = nll_backward_parts(grad, cache)
    moved = valid.shape + (shape[class_dim],)          # (S, C) classes last
    dtype = np.result_type(at_target, w)
    dp = np.zeros(moved, dtype) if spread is None else spread[..., None] * w  # (S, C)
    _add_at_targets(dp, safe, at_target)
    return np.moveaxis(dp, -1, class_dim)              # classes back in dim 1 (or 0)


def _add_at_targets(dp: np.ndarray, safe: np.ndarray, values: np.ndarray) -> None:
    """dp[n, t_n] += values[n] for dp (S, C): one entry per row, a gather and a scatter
    instead of a dense one-hot (S, C) mask."""
    column = safe[..., None]                           # (S, 1)
    picked = np.take_along_axis(dp, column, axis=-1)   # (S, 1)
    np.put_along_axis(dp, column, picked + values[..., None], axis=-1)


class NLLLoss(Module):
    """``torch.nn.NLLLoss``: the negative log-likelihood of log-probabilities ``input``."""

    def __init__(self, weight: Any = None, *, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.register_buffer("weight", _float_buffer(weight))
        self.ignore_index = ignore_index
        self.reduction = _check_reduction(reduction)

    def forward(self, input: np.ndarray, target: np.ndarray) -> np.ndarray:
        loss, self._cache = nll_forward(input, target, self.weight, self.ignore_index,
                                        self.reduction)
        return loss

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return nll_backward(grad_output, self._cache)  # the integer target gets no gradient

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"


class CrossEntropyLoss(Module):
    """``torch.nn.CrossEntropyLoss``: log_softmax over the class dim, then NLL (with optional
    class weights, ignore_index and label smoothing)."""

    def __init__(self, weight: Any = None, *, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
        self.register_buffer("weight", _float_buffer(weight))
        self.ignore_index = ignore_index
        self.reduction = _check_reduction(reduction)
        self.label_smoothing = label_smoothing

    def forward(self, input: np.ndarray, target: np.ndarray) -> np.ndarray:
        self._class_dim = 0 if np.ndim(input) == 1 else 1
        # p = log_softmax(x); softmax(x) is kept for the backward
        logp, self._softmax = log_softmax_and_softmax(input, self._class_dim)
        loss, self._cache = nll_forward(logp, target, self.weight, self.ignore_index,
                                        self.reduction, self.label_smoothing)
        return loss

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        # dL/dp = a 1[c = t] + s w_c (nll_backward_parts); log_softmax's backward
        # dL/dx = dL/dp - softmax Σ_c dL/dp_c, with Σ_c dL/dp_c = a + s Σ_c w_c
        at_target, spread = nll_backward_parts(grad_output, self._cache)
        w, safe = self._cache[4], self._cache[3]
        total = at_target if spread is None else at_target + spread * np.sum(w)  # (S,)
        softmax = np.moveaxis(self._softmax, self._class_dim, -1)  # (S, C) classes last
        dx = softmax * -total[..., None]               # - softmax Σ_c dL/dp_c
        if spread is not None:
            dx += spread[..., None] * w                # + the smoothing part of dL/dp
        _add_at_targets(dx, safe, at_target)           # + the target part of dL/dp
        return np.moveaxis(dx, -1, self._class_dim)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, " \
               f"label_smoothing={self.label_smoothing}"


# --- BCEWithLogitsLoss -------------------------------------------------------------------------
class BCEWithLogitsLoss(Module):
    """``torch.nn.BCEWithLogitsLoss``: sigmoid + binary cross-entropy in one stable formula."""

    def __init__(self, weight: Any = None, *, reduction: str = "mean",
                 pos_weight: Any = None) -> None:
        super().__init__()
        self.register_buffer("weight", _float_buffer(weight))
        self.register_buffer("pos_weight", _float_buffer(pos_weight))
        self.reduction = _check_reduction(reduction)

    def forward(self, input: np.ndarray, target: np.ndarray) -> np.ndarray:
        if np.shape(input) != np.shape(target):
            raise ValueError(f"Target size ({np.shape(target)}) must be the same as input size "
                             f"({np.shape(input)})")
        x, y = input, target
        sp = softplus(-x)                              # -log σ(x)
        # 1 + (q - 1) y: the log σ(x) term's factor; 1 without pos_weight
        factor = 1.0 if self.pos_weight is None else 1.0 + (self.pos_weight - 1.0) * y
        loss = (1.0 - y) * x + factor * sp
        w = 1.0 if self.weight is None else self.weight
        self._cache = (x, y, sp, factor, w)
        return reduce(w * loss, self.reduction)

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y, sp, factor, w = self._cache
        dl = w * reduce_backward(grad_output, x.shape, self.reduction)  # dL/dl times w
        dinput = dl * ((1.0 - y) - factor * sigmoid(-x))  # softplus'(-x) · (-1) = -σ(-x)
        dtarget = -x if self.pos_weight is None else -x + (self.pos_weight - 1.0) * sp
        return dinput, dl * dtarget                    # d factor/dy = q - 1

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
