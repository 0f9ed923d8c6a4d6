r"""A pairwise reward model in PyTorch: the MLP scorer and the Bradley–Terry loss written out,
autograd does the backward.

    r(x) = fc2(tanh(fc1(x)))                       (M,)    chosen and rejected as one batch
    d    = r(chosen) - r(rejected) - margin        (N,)
    L    = reduce(softplus(-d))                    -log σ(d), stable for any d

fc2 has no bias: a constant reward offset cancels in every difference. Same constructor,
submodules and parameter names as the NumPy twin.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torch_impl.layers.activations import Tanh, softplus
from torch_impl.layers.linear import Linear
from torch_impl.layers.losses import REDUCTIONS, reduce


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: float = 0.0,
                       reduction: str = "mean") -> torch.Tensor:
    """reduce(softplus(-(r_c - r_r - m)))."""
    d = r_chosen - r_rejected - margin                 # (N,)
    return reduce(softplus(-d), reduction)


class RewardModel(nn.Module):
    """fc1 -> tanh -> fc2 scorer and the Bradley–Terry loss; ``score(x)`` is r(x)."""

    def __init__(self, in_features: int = 8, hidden_features: int = 32, margin: float = 0.0,
                 reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"{reduction} is not a valid value for reduction "
                             f"(expected one of {', '.join(REDUCTIONS)})")
        self.in_features = in_features
        self.hidden_features = hidden_features
        self.margin = margin
        self.reduction = reduction
        self.fc1 = Linear(in_features, hidden_features)
        self.act = Tanh()
        self.fc2 = Linear(hidden_features, 1, bias=False)
        self.intermediates: dict[str, torch.Tensor] = {}

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"RewardModel expects features (N, {self.in_features}), got shape "
                             f"{tuple(x.shape)}")

    def score(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.fc2(self.act(self.fc1(x)))[:, 0]     # (M,)

    def forward(self, chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
        if chosen.shape != rejected.shape:
            raise ValueError(f"chosen and rejected must have the same shape, got "
                             f"{tuple(chosen.shape)} and {tuple(rejected.shape)}")
        self._check(chosen)
        n = chosen.shape[0]
        r = self.score(torch.cat([chosen, rejected]))   # (2N,)
        r_chosen, r_rejected = r[:n], r[n:]
        if r.requires_grad:
            r_chosen.retain_grad()                      # keep autograd's gradient for the
            r_rejected.retain_grad()                    # comparison
        self.intermediates = {"r_chosen": r_chosen, "r_rejected": r_rejected}
        return bradley_terry_loss(r_chosen, r_rejected, self.margin, self.reduction)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, hidden_features={self.hidden_features}, "
                f"margin={self.margin}, reduction={self.reduction!r}")


def train_step(model: RewardModel, optimizer: Any, chosen: torch.Tensor,
               rejected: torch.Tensor) -> float:
    """One step: forward, zero the grads, autograd's backward, the optimizer's update."""
    loss = model(chosen, rejected)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def preference_margins(model: RewardModel, chosen: torch.Tensor,
                       rejected: torch.Tensor) -> torch.Tensor:
    return model.score(chosen) - model.score(rejected)  # (N,)


def preference_accuracy(model: RewardModel, chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    return (preference_margins(model, chosen, rejected) > 0).double().mean().item()
