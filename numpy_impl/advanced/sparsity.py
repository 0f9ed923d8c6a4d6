r"""Sparse networks by hand: magnitude pruning, masks kept through training, iterative pruning.

Pruning a weight tensor W sets some of its entries to zero and keeps them there. The pruned
layer is re-parametrized, as ``torch.nn.utils.prune`` does it:

    W = W_orig ⊙ M          (M ∈ {0, 1}, same shape; W_orig is the trained parameter)

so the forward pass uses W, and the chain rule through the elementwise product gives

    dL/dW_orig = dL/dW ⊙ M

-- pruned weights receive zero gradient, and W stays zero wherever M is, whatever an optimizer
does to W_orig (momentum may still move a pruned W_orig entry: it is masked out of W).

Which entries: the smallest by magnitude (magnitude pruning, "unimportant" = small).

- unstructured, layer-wise (``L1Unstructured``): the k entries of one tensor with the smallest
  |w|, k = amount (an int) or round(amount · size) (a fraction; Python's round, halves to even);
- structured (``LnStructured``): whole slices along ``dim`` (rows of a Linear weight = output
  units for dim=0, columns = input features for dim=1, output channels of a Conv2d weight for
  dim=0) with the smallest L_n norm ||W_c||_n = (Σ_{j} |w_cj|^n)^{1/n} over every other axis;
- global unstructured (``global_unstructured``): the k smallest |w| over several tensors at
  once, so layers end up with different sparsities.

Ties: the order by magnitude is a stable sort of the flattened tensor (equal magnitudes: the
lower index is pruned first). ``torch.topk``, which torch's pruning uses, does not specify its
order among equal values: the masks agree with torch's wherever the magnitudes at the cut
differ.

Pruning again (iterative pruning) acts on what is left: an unstructured amount counts the
entries still unpruned, a structured one the slices not yet all zero, and the new mask is the
old one with more zeros (torch's ``PruningContainer``). The scores are the current pruned W,
as of the last forward pass.

Iterative pruning with fine-tuning: prune a fraction of the remaining weights, train a few
steps with the masks in place, measure, repeat; the sparsity-vs-accuracy curve records where
accuracy starts to fall.

State mirrors torch: a pruned ``weight`` becomes the parameter ``weight_orig`` and the buffer
``weight_mask`` (so a torch state_dict loads unchanged), and ``module.weight`` is recomputed
before each forward (torch's forward pre-hook); here backward also folds dL/dW ⊙ M into
``weight_orig.grad``, which autograd does for torch.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from numpy_impl.module import Module, Parameter

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

    def compute_mask(self, t: np.ndarray, default_mask: np.ndarray) -> np.ndarray:
        k = n_to_prune(self.amount, t.size)
        mask = default_mask.copy()
        smallest = np.argsort(np.abs(t).reshape(-1), kind="stable")[:k]  # (k,) ascending |w|
        mask.reshape(-1)[smallest] = 0
        return mask


class LnStructured:
    """Zero the ``amount`` slices along ``dim`` with the smallest L_n norm."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount: int | float, n: float, dim: int = -1) -> None:
        self.amount, self.n, self.dim = amount, n, dim

    def compute_mask(self, t: np.ndarray, default_mask: np.ndarray) -> np.ndarray:
        dim = self.dim % t.ndim
        channels = t.shape[dim]
        k = n_to_prune(self.amount, channels)
        if k == 0:
            return default_mask
        others = tuple(a for a in range(t.ndim) if a != dim)
        if self.n == np.inf:
            norm = np.abs(t).max(axis=others)                           # (C,)
        else:
            norm = (np.abs(t) ** self.n).sum(axis=others) ** (1.0 / self.n)  # (C,) ||W_c||_n
        keep = np.ones(channels, dtype=t.dtype)
        keep[np.argsort(norm, kind="stable")[:k]] = 0                  # the k smallest norms
        shape = [1] * t.ndim
        shape[dim] = channels
        return keep.reshape(shape) * default_mask                      # broadcast along dim


class CustomFromMask:
    """A given mask, combined with any earlier one (how a global pruning lands per tensor)."""

    PRUNING_TYPE = "global"

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask

    def compute_mask(self, t: np.ndarray, default_mask: np.ndarray) -> np.ndarray:
        return default_mask * self.mask


def combine_masks(method: Any, t: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The new mask: ``method`` applied to the part of ``t`` the old ``mask`` still keeps."""
    new_mask = mask.astype(t.dtype)                                   # a copy
    if method.PRUNING_TYPE == "unstructured":
        keep = mask == 1                                              # entries still unpruned
    elif method.PRUNING_TYPE == "structured":
        dim = method.dim % t.ndim
        alive = mask.sum(axis=tuple(a for a in range(t.ndim) if a != dim)) != 0  # (C,)
        keep = (slice(None),) * dim + (alive,)                        # slices not all zero
    else:
        keep = (slice(None),) * t.ndim
    new_mask[keep] = method.compute_mask(t[keep], default_mask=new_mask[keep])
    return new_mask


# --- the re-parametrization W = W_orig ⊙ M ---------------------------------------------------
def is_pruned(module: Module, name: str = "weight") -> bool:
    return name in getattr(module, "_pruned_names", ())


def _apply_mask(module: Module, name: str) -> None:
    """module.<name> = W_orig ⊙ M: a Parameter the layer reads and writes its gradient into,
    not registered (``named_parameters`` lists ``<name>_orig``)."""
    weight = getattr(module, name + "_orig").data * getattr(module, name + "_mask")
    object.__setattr__(module, name, Parameter(weight))


def _install_hooks(module: Module) -> None:
    """Wrap the layer's forward (recompute W first, torch's pre-hook) and backward (then
    dL/dW_orig += dL/dW ⊙ M, what autograd does through the product)."""
    if "_pruned_names" in module.__dict__:
        return
    object.__setattr__(module, "_pruned_names", [])
    forward, backward = module.forward, module.backward

    def pruned_forward(*inputs: Any, **kwargs: Any) -> Any:
        for name in module._pruned_names:
            _apply_mask(module, name)
        return forward(*inputs, **kwargs)

    def pruned_backward(grad_output: Any) -> Any:
        grad = backward(grad_output)
        for name in module._pruned_names:
            weight = getattr(module, name)
            getattr(module, name + "_orig").grad += weight.grad * getattr(module, name + "_mask")
            weight.grad = np.zeros_like(weight.grad)                  # handed on: do not reuse
        return grad

    object.__setattr__(module, "forward", pruned_forward)
    object.__setattr__(module, "backward", pruned_backward)


def prune(module: Module, name: str, method: Any,
          importance_scores: np.ndarray | None = None) -> Module:
    """Apply a pruning method to ``module.<name>`` (again, if it is pruned already)."""
    if not is_pruned(module, name):
        orig = getattr(module, name)                                  # the Parameter
        module._parameter_names.remove(name)                          # weight -> weight_orig,
        object.__delattr__(module, name)                              # registered last, as
        setattr(module, name + "_orig", orig)                         # torch does
        mask = np.ones_like(orig.data)
        scores = orig.data
    else:  # subtle: the scores are the pruned W as computed at the last forward
        mask = getattr(module, name + "_mask")
        scores = getattr(module, name).data
    if importance_scores is not None:
        scores = importance_scores
    module.register_buffer(name + "_mask", combine_masks(method, scores, mask))
    _install_hooks(module)
    if name not in module._pruned_names:
        module._pruned_names.append(name)
    _apply_mask(module, name)
    return module


def l1_unstructured(module: Module, name: str, amount: int | float) -> Module:
    return prune(module, name, L1Unstructured(amount))


def ln_structured(module: Module, name: str, amount: int | float, n: float,
                  dim: int) -> Module:
    return prune(module, name, LnStructured(amount, n, dim))


def global_unstructured(parameters: Iterable[tuple[Module, str]], pruning_method: type,
                        **kwargs: Any) -> None:
    """Prune the smallest entries over all ``(module, name)`` tensors together."""
    parameters = list(parameters)
    method = pruning_method(**kwargs)
    if method.PRUNING_TYPE != "unstructured":
        raise TypeError(f"global pruning needs an unstructured method, got {pruning_method}")
    scores = np.concatenate([getattr(m, n).data.reshape(-1) for m, n in parameters])  # (P,)
    masks = np.concatenate([getattr(m, n + "_mask").reshape(-1) if is_pruned(m, n)
                            else np.ones(getattr(m, n).data.size, scores.dtype)
                            for m, n in parameters])
    final = combine_masks(method, scores, masks)                      # (P,) one cut for all
    start = 0
    for module, name in parameters:
        shape = getattr(module, name).data.shape
        size = int(np.prod(shape))
        prune(module, name, CustomFromMask(final[start:start + size].reshape(shape)))
        start += size


def remove(module: Module, name: str) -> Module:
    """Make the pruning permanent: ``<name>`` becomes a Parameter again, W_orig ⊙ M."""
    if not is_pruned(module, name):
        raise ValueError(f"parameter {name!r} of {type(module).__name__} is not pruned")
    weight = getattr(module, name + "_orig").data * getattr(module, name + "_mask")
    module._parameter_names.remove(name + "_orig")
    module._buffer_names.remove(name + "_mask")
    for attribute in (name + "_orig", name + "_mask", name):
        object.__delattr__(module, attribute)
    module._pruned_names.remove(name)
    setattr(module, name, Parameter(weight))
    if not module._pruned_names:  # no pruned tensor left: the layer's own methods again
        for attribute in ("forward", "backward", "_pruned_names"):
            object.__delattr__(module, attribute)
    return module


# --- training with masks, and iterative pruning -----------------------------------------------
def sparsity(parameters: Sequence[tuple[Module, str]]) -> float:
    """The fraction of pruned entries (zeros of the masks) over the tensors; 0 if unpruned."""
    masks = [getattr(m, n + "_mask") if is_pruned(m, n) else np.ones(getattr(m, n).data.shape)
             for m, n in parameters]
    return float(sum(np.count_nonzero(k == 0) for k in masks) / sum(k.size for k in masks))


def accuracy(model: Module, x: np.ndarray, y: np.ndarray) -> float:
    """The fraction of rows whose largest logit is the target class."""
    return float(np.mean(np.argmax(model(x), axis=1) == y))


def fine_tune(model: Module, loss_fn: Module, optimizer: Any, x: np.ndarray, y: np.ndarray,
              batches: np.ndarray) -> list[float]:
    """One optimizer step per row of ``batches`` (B indices each); the masks stay in place."""
    losses = []
    for batch in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(x[batch]), y[batch])                     # forward with W = W_orig ⊙ M
        model.backward(loss_fn.backward(np.ones_like(loss)))          # dL/dW_orig = dL/dW ⊙ M
        optimizer.step()
        losses.append(float(loss))
    return losses


def iterative_pruning(model: Module, parameters: Sequence[tuple[Module, str]],
                      amounts: Sequence[int | float], loss_fn: Module, optimizer: Any,
                      train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                      batches: np.ndarray, scope: str = "global",
                      pruning_method: type = L1Unstructured, **method_kwargs: Any
                      ) -> dict[str, np.ndarray]:
    """Rounds of (prune ``amounts[r]`` of what is left, fine-tune on ``batches[r]``, measure).

    ``scope``: "global" (one unstructured cut over every tensor) or "layer" (the amount in each
    tensor, by ``pruning_method(amount, **method_kwargs)``: structured ones prune slices).
    Returns per round, the unpruned start first: ``sparsity`` and test ``accuracy`` (R + 1,),
    and the fine-tuning ``loss`` (R, steps)."""
    history: dict[str, list] = {"sparsity": [sparsity(parameters)],
                                "accuracy": [accuracy(model, *test)], "loss": []}
    for amount, round_batches in zip(amounts, batches, strict=True):
        if scope == "global":
            global_unstructured(parameters, pruning_method, amount=amount, **method_kwargs)
        else:
            for module, name in parameters:
                prune(module, name, pruning_method(amount=amount, **method_kwargs))
        history["loss"].append(fine_tune(model, loss_fn, optimizer, *train, round_batches))
        history["accuracy"].append(accuracy(model, *test))            # (refreshes every W)
        history["sparsity"].append(sparsity(parameters))
    return {k: np.array(v) for k, v in history.items()}
