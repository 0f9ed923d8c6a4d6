r"""Gradient clipping by hand: ``clip_grad_norm_`` and ``clip_grad_value_`` over NumPy
``Parameter``\ s, shaped like ``torch.nn.utils``.

Clipping acts between ``backward`` and ``optimizer.step()``: it rewrites every ``p.grad`` in
place and leaves the parameters alone.

Clipping by norm. With ``g_i`` the gradient of parameter i (any shape) and ``||.||_p`` the
vector p-norm of all its elements, the total norm is the p-norm of the per-parameter norms --
the same as the p-norm of every gradient element concatenated into one vector::

    ||g_i||_p = (sum_j |g_ij|^p)^(1/p)         p = inf: max_j |g_ij|;  p = -inf: min_j |g_ij|
                                               p = 0: the number of nonzero elements
    N         = ||(||g_1||_p, ..., ||g_n||_p)||_p
    c         = min(max_norm / (N + 1e-6), 1)
    g_i      <- c g_i

The 1e-6 keeps ``c`` finite for a zero gradient. ``c`` is clamped at 1, so gradients are only
ever scaled down; every gradient is multiplied by ``c`` even when it is 1 (exact in floating
point), as torch does. A non-finite ``N`` (a NaN or an infinite gradient element) makes
``c`` NaN or 0: with ``error_if_nonfinite=True`` that is refused with torch's RuntimeError,
otherwise the gradients are scaled by it anyway. The return value is ``N`` (a 0-d array, the
gradients' dtype), computed *before* clipping -- the number to log.

Clipping by value: ``g_ij <- min(max(g_ij, -v), v)``, elementwise, nothing returned.

Parameters whose ``grad`` is ``None`` are skipped, as torch skips ``p.grad is None``; with no
gradient at all the total norm is 0.0. ``foreach`` selects torch's fused kernels there and is
accepted here for the signature's sake (NumPy has one implementation).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from numpy_impl.module import Parameter

__all__ = ["get_total_norm", "clip_grads_with_norm_", "clip_grad_norm_", "clip_grad_value_"]


def _as_list(parameters: Parameter | Iterable[Parameter]) -> list[Parameter]:
    return [parameters] if isinstance(parameters, Parameter) else list(parameters)


def vector_norm(x: np.ndarray, norm_type: float) -> np.ndarray:
    """||x||_p over every element of x, for any real p (inf, -inf and 0 included)."""
    a = np.abs(x).reshape(-1)                                   # (n,)
    if norm_type == np.inf:
        return a.max(initial=0.0)
    if norm_type == -np.inf:
        return a.min()
    if norm_type == 0:
        return np.asarray(np.count_nonzero(a), dtype=x.dtype)
    if norm_type == 1:
        return a.sum()
    if norm_type == 2:
        return np.sqrt(np.dot(a, a))                            # one BLAS call, no a**2 copy
    return (a ** norm_type).sum() ** (1.0 / norm_type)


def get_total_norm(tensors: np.ndarray | Iterable[np.ndarray], norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> np.ndarray:
    """N = ||(||g_1||_p, ..., ||g_n||_p)||_p: the p-norm of all elements of all arrays."""
    arrays = [tensors] if isinstance(tensors, np.ndarray) else list(tensors)
    norm_type = float(norm_type)
    if len(arrays) == 0:
        return np.asarray(0.0, dtype=np.float32)                # torch.tensor(0.0)
    norms = np.stack([vector_norm(g, norm_type) for g in arrays])  # (n,) one norm each
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.asarray(vector_norm(norms, norm_type))       # () the norm of the norms
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
    return total


def clip_grads_with_norm_(parameters: Parameter | Iterable[Parameter], max_norm: float,
                          total_norm: np.ndarray, foreach: bool | None = None) -> None:
    """g_i <- min(max_norm / (N + 1e-6), 1) g_i, in place, given N."""
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        clip_coef = float(max_norm) / (total_norm + 1e-6)       # max_norm / (N + eps)
        clip_coef_clamped = np.minimum(clip_coef, 1.0)          # never scale up; NaN stays NaN
        for g in grads:
            g *= clip_coef_clamped.astype(g.dtype)              # in place, as torch's mul_


def clip_grad_norm_(parameters: Parameter | Iterable[Parameter], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> np.ndarray:
    """Scale every gradient so that their total p-norm is at most ``max_norm``; returns the
    total norm from before the scaling."""
    parameters = _as_list(parameters)                           # a generator is read once
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_value_(parameters: Parameter | Iterable[Parameter], clip_value: float,
                     foreach: bool | None = None) -> None:
    """g <- clamp(g, -clip_value, clip_value) elementwise, in place."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            np.clip(p.grad, -clip_value, clip_value, out=p.grad)
