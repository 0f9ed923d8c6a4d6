r"""Loss functions in PyTorch: each loss written out with tensor ops, autograd does the backward.

    reduction   none: L = l    sum: L = Σ l    mean: L = Σ l / D   (D = #elements, or Σ v w_t)

    MSELoss            l = (x - y)²
    NLLLoss            l_n = -v_n w_{t_n} p_{n,t_n}              v_n = 1[t_n != ignore_index]
    CrossEntropyLoss   p = log_softmax(x) over the class dim,
                       l_n = v_n [(1 - ε)(-w_{t_n} p_{n,t_n}) + ε/C Σ_c (-w_c p_{n,c})]
    BCEWithLogitsLoss  l = w [(1 - y) x + (1 + (q - 1) y) softplus(-x)]

Same constructors (without the deprecated ``size_average`` / ``reduce``; arguments after the
first keyword-only), buffers ``weight`` / ``pos_weight`` and reductions as ``torch.nn``.
"""
from __future__ import annotations

import torch
from torch import nn

from torch_impl.layers.activations import log_softmax, softplus

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction "
                         f"(expected one of {', '.join(REDUCTIONS)})")
    return reduction


def reduce(loss: torch.Tensor, reduction: str,
           denominator: torch.Tensor | None = None) -> torch.Tensor:
    """none: l; sum: Σ l; mean: Σ l / D (D = the number of elements unless given)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (loss.numel() if denominator is None else denominator)


class MSELoss(nn.Module):
    """Same constructor as ``torch.nn.MSELoss``; input and target must have the same shape."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.shape != target.shape:
            raise ValueError(f"MSELoss needs input and target of the same shape, got "
                             f"{tuple(input.shape)} and {tuple(target.shape)}")
        return reduce((input - target) ** 2, self.reduction)


def nll_loss(logp: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
             ignore_index: int, reduction: str, label_smoothing: float = 0.0) -> torch.Tensor:
    """NLL of log-probabilities ``logp`` (class dim 1, or 0 for 1-d input), with torch's
    label smoothing; ignored targets are masked with `where`, so that when every target is
    ignored the mean is 0/0 = NaN but the gradient is 0 (no NaN leaks through a product)."""
    class_dim = 0 if logp.dim() == 1 else 1
    n_classes = logp.shape[class_dim]
    batch_shape = logp.shape[:class_dim] + logp.shape[class_dim + 1:]
    if target.shape != batch_shape:
        raise ValueError(f"expected a target of shape {tuple(batch_shape)} for input of shape "
                         f"{tuple(logp.shape)} (the input without its class dim {class_dim}), "
                         f"got {tuple(target.shape)}")
    if target.is_floating_point():
        raise TypeError(f"targets must be integer class indices, got dtype {target.dtype}")
    valid = target != ignore_index                                  # (S,)
    out_of_range = valid & ((target < 0) | (target >= n_classes))
    if out_of_range.any():
        raise IndexError(f"Target {target[out_of_range][0].item()} is out of bounds.")
    p = logp.movedim(class_dim, -1)                                 # (S, C)
    safe = torch.where(valid, target, torch.zeros_like(target))
    w = torch.ones(n_classes, dtype=logp.dtype, device=logp.device) if weight is None \
        else weight.to(logp.dtype)
    w_t = torch.where(valid, w[safe], torch.zeros((), dtype=logp.dtype, device=logp.device))
    picked = p.gather(-1, safe.unsqueeze(-1)).squeeze(-1)           # p_{n, t_n}: (S,)
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    loss = torch.where(valid, -w_t * picked, zero)                  # (S,)
    if label_smoothing > 0.0:
        smooth = torch.where(valid, -(w * p).sum(dim=-1), zero)     # Σ_c -w_c p_c
        loss = (1.0 - label_smoothing) * loss + (label_smoothing / n_classes) * smooth
    return reduce(loss, reduction, w_t.sum())


class NLLLoss(nn.Module):
    """Same constructor and buffer ``weight`` as ``torch.nn.NLLLoss``."""

    def __init__(self, weight: torch.Tensor | None = None, *, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = _check_reduction(reduction)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class CrossEntropyLoss(nn.Module):
    """Same constructor and buffer ``weight`` as ``torch.nn.CrossEntropyLoss``."""

    def __init__(self, weight: torch.Tensor | None = None, *, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = _check_reduction(reduction)
        self.label_smoothing = label_smoothing

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = log_softmax(input, 0 if input.dim() == 1 else 1)
        return nll_loss(logp, target, self.weight, self.ignore_index, self.reduction,
                        self.label_smoothing)


class BCEWithLogitsLoss(nn.Module):
    """Same constructor and buffers ``weight``, ``pos_weight`` as ``torch.nn.BCEWithLogitsLoss``."""

    def __init__(self, weight: torch.Tensor | None = None, *, reduction: str = "mean",
                 pos_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.reduction = _check_reduction(reduction)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.shape != target.shape:
            raise ValueError(f"Target size ({tuple(target.shape)}) must be the same as input "
                             f"size ({tuple(input.shape)})")
        factor = 1.0 if self.pos_weight is None else 1.0 + (self.pos_weight - 1.0) * target
        loss = (1.0 - target) * input + factor * softplus(-input)   # -log σ(x) = softplus(-x)
        if self.weight is not None:
            loss = loss * self.weight
        return reduce(loss, self.reduction)
