r"""Gradient clipping written out in torch tensor ops; ``torch.nn.utils.clip_grad_norm_`` and
``clip_grad_value_`` are the witnesses.

    ||g_i||_p = (sum_j |g_ij|^p)^(1/p)        (inf: max |g_ij|, -inf: min |g_ij|, 0: nonzeros)
    N         = ||(||g_1||_p, ..., ||g_n||_p)||_p
    g_i      <- min(max_norm / (N + 1e-6), 1) g_i           (clip_grad_norm_, returns N)
    g_ij     <- clamp(g_ij, -v, v)                           (clip_grad_value_)

Same names, signatures and semantics as ``torch.nn.utils``: parameters without a ``grad`` are
skipped, a non-finite N raises with ``error_if_nonfinite=True``, ``foreach`` is accepted.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch

__all__ = ["get_total_norm", "clip_grads_with_norm_", "clip_grad_norm_", "clip_grad_value_"]


def _as_list(parameters: torch.Tensor | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    return [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)


def vector_norm(x: torch.Tensor, norm_type: float) -> torch.Tensor:
    """||x||_p over every element of x, for any real p."""
    a = x.abs().reshape(-1)                                     # (n,)
    if norm_type == math.inf:
        return a.max() if a.numel() else a.new_zeros(())
    if norm_type == -math.inf:
        return a.min()
    if norm_type == 0:
        return (a != 0).sum().to(x.dtype)
    if norm_type == 1:
        return a.sum()
    if norm_type == 2:
        return torch.sqrt(torch.dot(a, a))
    return a.pow(norm_type).sum().pow(1.0 / norm_type)


@torch.no_grad()
def get_total_norm(tensors: torch.Tensor | Iterable[torch.Tensor], norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> torch.Tensor:
    """N: the p-norm of the per-tensor p-norms."""
    tensors = _as_list(tensors)
    norm_type = float(norm_type)
    if len(tensors) == 0:
        return torch.tensor(0.0)
    norms = torch.stack([vector_norm(g, norm_type) for g in tensors])  # (n,)
    total = vector_norm(norms, norm_type)                               # ()
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
    return total


@torch.no_grad()
def clip_grads_with_norm_(parameters: torch.Tensor | Iterable[torch.Tensor], max_norm: float,
                          total_norm: torch.Tensor, foreach: bool | None = None) -> None:
    """g_i <- min(max_norm / (N + 1e-6), 1) g_i, in place."""
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    clip_coef = float(max_norm) / (total_norm + 1e-6)
    clip_coef_clamped = torch.clamp(clip_coef, max=1.0)
    for g in grads:
        g.mul_(clip_coef_clamped.to(g.dtype))


def clip_grad_norm_(parameters: torch.Tensor | Iterable[torch.Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> torch.Tensor:
    """Scale the gradients to a total p-norm of at most ``max_norm``; returns the norm before."""
    parameters = _as_list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


@torch.no_grad()
def clip_grad_value_(parameters: torch.Tensor | Iterable[torch.Tensor], clip_value: float,
                     foreach: bool | None = None) -> None:
    """g <- clamp(g, -clip_value, clip_value), in place."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            p.grad.clamp_(min=-clip_value, max=clip_value)
