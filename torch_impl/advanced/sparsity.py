r"""Sparse networks in PyTorch: magnitude pruning, masks kept through training, iterative pruning.

A pruned tensor is re-parametrized W = W_orig ⊙ M: ``weight`` leaves the module's parameters,
``weight_orig`` (the same Parameter) and the buffer ``weight_mask`` take its place, and a forward
pre-hook recomputes ``module.weight`` before every forward, so autograd gives
dL/dW_orig = dL/dW ⊙ M and pruned weights stay zero through training.

Masks: unstructured (``L1Unstructured``) zeros the k smallest |w| (k an int, or round(amount ·
size) for a fraction); structured (``LnStructured``) the k slices along ``dim`` with the smallest
L_n norm over the other axes; ``global_unstructured`` makes one cut over several tensors.
Equal magnitudes: a stable sort, the lower flat index is pruned first. Pruning again acts on
what is left (entries still unpruned, slices not all zero), scored by the current pruned W.
This file writes the masks and the re-parametrization itself; ``torch.nn.utils.prune`` is the
witness it is compared with.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["L1Unstructured", "LnStructured", "CustomFromMask", "combine_masks", "prune",
           "l1_unstructured", "ln_structured", "global_unstructured", "remove", "is_pruned",
           "sparsity", "accuracy", "fine_tune", "iterative_pruning"]


def n_to_prune(amount: int | float, size: int) -> int:
    """An int amount is a count, a float a fraction of ``size`` (rounded half to even)."""
    if isinstance(amount, numbers.Integral) and not isinstance(amount, bool):
        if not 0 <= amount <= size:
            raise ValueError(f"amount={amount} must be between 0 and the {size} units")
        return int(amount)
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount={amount} must be a fraction in [0, 1] or a count")
    return round(amount * size)


class L1Unstructured:
    """Zero the ``amount`` entries with the smallest |w|."""

    PRUNING_TYPE = "unstructured"

    def __init__(self, amount: int | float) -> None:
        self.amount = amount

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        k = n_to_prune(self.amount, t.numel())
        mask = default_mask.clone()
        smallest = torch.sort(t.abs().flatten(), stable=True).indices[:k]
        mask.view(-1)[smallest] = 0
        return mask


class LnStructured:
    """Zero the ``amount`` slices along ``dim`` with the smallest L_n norm."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount: int | float, n: float, dim: int = -1) -> None:
        self.amount, self.n, self.dim = amount, n, dim

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        dim = self.dim % t.dim()
        channels = t.shape[dim]
        k = n_to_prune(self.amount, channels)
        if k == 0:
            return default_mask
        others = [a for a in range(t.dim()) if a != dim]
        norm = torch.linalg.vector_norm(t, ord=self.n, dim=others)     # (C,) ||W_c||_n
        keep = torch.ones(channels, dtype=t.dtype)
        keep[torch.sort(norm, stable=True).indices[:k]] = 0
        shape = [1] * t.dim()
        shape[dim] = channels
        return keep.view(shape) * default_mask


class CustomFromMask:
    """A given mask, combined with any earlier one (how a global pruning lands per tensor)."""

    PRUNING_TYPE = "global"

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        return default_mask * self.mask


def combine_masks(method: Any, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The new mask: ``method`` applied to the part of ``t`` the old ``mask`` still keeps."""
    new_mask = mask.to(dtype=t.dtype, copy=True)
    if method.PRUNING_TYPE == "unstructured":
        keep = mask == 1
    elif method.PRUNING_TYPE == "structured":
        dim = method.dim % t.dim()
        alive = mask.sum(dim=[a for a in range(t.dim()) if a != dim]) != 0
        keep = (slice(None),) * dim + (alive,)
    else:
        keep = (slice(None),) * t.dim()
    new_mask[keep] = method.compute_mask(t[keep], default_mask=new_mask[keep])
    return new_mask


# --- the re-parametrization W = W_orig ⊙ M ---------------------------------------------------
def is_pruned(module: nn.Module, name: str = "weight") -> bool:
    return name in getattr(module, "_pruned_names", ())


def _recompute_weights(module: nn.Module, inputs: Any) -> None:
    """The forward pre-hook: W = W_orig ⊙ M for every pruned tensor of the module."""
    for name in module._pruned_names:
        setattr(module, name, getattr(module, name + "_orig") * getattr(module, name + "_mask"))


def prune(module: nn.Module, name: str, method: Any,
          importance_scores: torch.Tensor | None = None) -> nn.Module:
    """Apply a pruning method to ``module.<name>`` (again, if it is pruned already)."""
    if not is_pruned(module, name):
        orig = getattr(module, name)
        delattr(module, name)                                        # weight -> weight_orig
        module.register_parameter(name + "_orig", orig)
        mask = torch.ones_like(orig, requires_grad=False)
        scores = orig.detach()
    else:  # subtle: the scores are the pruned W as computed at the last forward
        mask = getattr(module, name + "_mask")
        scores = getattr(module, name).detach()
    if importance_scores is not None:
        scores = importance_scores
    with torch.no_grad():
        module.register_buffer(name + "_mask", combine_masks(method, scores, mask))
    if "_pruned_names" not in module.__dict__:
        module._pruned_names = []
        module._pruning_hook = module.register_forward_pre_hook(_recompute_weights)
    if name not in module._pruned_names:
        module._pruned_names.append(name)
    setattr(module, name, getattr(module, name + "_orig") * getattr(module, name + "_mask"))
    return module


def l1_unstructured(module: nn.Module, name: str, amount: int | float) -> nn.Module:
    return prune(module, name, L1Unstructured(amount))


def ln_structured(module: nn.Module, name: str, amount: int | float, n: float,
                  dim: int) -> nn.Module:
    return prune(module, name, LnStructured(amount, n, dim))


def global_unstructured(parameters: Iterable[tuple[nn.Module, str]], pruning_method: type,
                        **kwargs: Any) -> None:
    """Prune the smallest entries over all ``(module, name)`` tensors together."""
    parameters = list(parameters)
    method = pruning_method(**kwargs)
    if method.PRUNING_TYPE != "unstructured":
        raise TypeError(f"global pruning needs an unstructured method, got {pruning_method}")
    with torch.no_grad():
        scores = torch.cat([getattr(m, n).detach().flatten() for m, n in parameters])
        masks = torch.cat([getattr(m, n + "_mask").flatten() if is_pruned(m, n)
                           else torch.ones(getattr(m, n).numel(), dtype=scores.dtype)
                           for m, n in parameters])
        final = combine_masks(method, scores, masks)                 # one cut for all
    for (module, name), part in zip(parameters, final.split(
            [getattr(m, n).numel() for m, n in parameters]), strict=True):
        prune(module, name, CustomFromMask(part.view_as(getattr(module, name))))


def remove(module: nn.Module, name: str) -> nn.Module:
    """Make the pruning permanent: ``<name>`` becomes a Parameter again, W_orig ⊙ M."""
    if not is_pruned(module, name):
        raise ValueError(f"parameter {name!r} of {type(module).__name__} is not pruned")
    weight = (getattr(module, name + "_orig") * getattr(module, name + "_mask")).detach()
    for attribute in (name + "_orig", name + "_mask", name):
        delattr(module, attribute)
    module._pruned_names.remove(name)
    module.register_parameter(name, nn.Parameter(weight))
    if not module._pruned_names:
        module._pruning_hook.remove()
        del module._pruned_names, module._pruning_hook
    return module


# --- training with masks, and iterative pruning -----------------------------------------------
def sparsity(parameters: Sequence[tuple[nn.Module, str]]) -> float:
    """The fraction of pruned entries (zeros of the masks) over the tensors; 0 if unpruned."""
    masks = [getattr(m, n + "_mask") if is_pruned(m, n) else torch.ones_like(getattr(m, n))
             for m, n in parameters]
    return float(sum(int((k == 0).sum()) for k in masks) / sum(k.numel() for k in masks))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of rows whose largest logit is the target class."""
    return float((model(x).argmax(dim=1) == y).double().mean())


def fine_tune(model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
              x: torch.Tensor, y: torch.Tensor, batches: torch.Tensor) -> list[float]:
    """One optimizer step per row of ``batches`` (B indices each); the masks stay in place."""
    losses = []
    for batch in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(x[batch]), y[batch])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def iterative_pruning(model: nn.Module, parameters: Sequence[tuple[nn.Module, str]],
                      amounts: Sequence[int | float], loss_fn: nn.Module,
                      optimizer: torch.optim.Optimizer,
                      train: tuple[torch.Tensor, torch.Tensor],
                      test: tuple[torch.Tensor, torch.Tensor], batches: torch.Tensor,
                      scope: str = "global", pruning_method: type = L1Unstructured,
                      **method_kwargs: Any) -> dict[str, torch.Tensor]:
    """Rounds of (prune ``amounts[r]`` of what is left, fine-tune on ``batches[r]``, measure):
    ``sparsity`` and ``accuracy`` (R + 1,), fine-tuning ``loss`` (R, steps)."""
    history: dict[str, list] = {"sparsity": [sparsity(parameters)],
                                "accuracy": [accuracy(model, *test)], "loss": []}
    for amount, round_batches in zip(amounts, batches, strict=True):
        if scope == "global":
            global_unstructured(parameters, pruning_method, amount=amount, **method_kwargs)
        else:
            for module, name in parameters:
                prune(module, name, pruning_method(amount=amount, **method_kwargs))
        history["loss"].append(fine_tune(model, loss_fn, optimizer, *train, round_batches))
        history["accuracy"].append(accuracy(model, *test))
        history["sparsity"].append(sparsity(parameters))
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in history.items()}
