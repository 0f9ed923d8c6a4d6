r"""A pairwise reward model: an MLP scorer r(x) trained with the Bradley–Terry objective.

Data: pairs (chosen, rejected) of feature vectors, chosen (N, D) and rejected (N, D), where a
labeller preferred the first. Bradley–Terry models that preference as

    P(chosen ≻ rejected) = σ(r(chosen) - r(rejected))

Scorer, on a batch x (M, D) -- chosen and rejected go through it as one batch of M = 2N rows,
the chosen first (so one forward caches everything one backward needs):

    a = x W1^T + b1            (M, H)     fc1
    h = tanh(a)                (M, H)
    r = h W2^T                 (M, 1) -> (M,)   fc2, the scalar reward

fc2 has no bias: a constant added to every reward cancels in every difference r_c - r_r, so
its gradient would be exactly zero (reward heads are bias-free for that reason).

Loss, with r_c = r[:N], r_r = r[N:] and an optional margin m (a preference must be won by at
least m, as in Llama 2's margin loss):

    d_n = r_c,n - r_r,n - m                          (N,)
    l_n = -log σ(d_n) = softplus(-d_n)               (N,)
    L   = (1/N) Σ_n l_n   (mean; or Σ, or l itself)  ()

softplus(z) = max(z, 0) + log(1 + e^{-|z|}) never overflows: d = -100 gives l = 100 (log of
σ(-100) computed directly would first round σ to e^{-100} and, in float32, to 0 -> -inf at
d = -104).

Backward, given g = dL'/dL (1 in training), one chain-rule step per line:

    dl_n  = g / N                                    mean (g for sum, g_n for none)
    dd_n  = -dl_n σ(-d_n)                            softplus'(z) = σ(z), dz/dd = -1
    dr_c  = dd,   dr_r = -dd                         d = r_c - r_r - m
    dh    = dr W2,  dW2 = dr^T h                     fc2 (dr as a column (M, 1))
    da    = dh (1 - h²)                              tanh
    dx    = da W1,  dW1 = da^T x,  db1 = Σ da        fc1; dx splits into dchosen, drejected

The parameter gradients are sums over both halves of the batch: each pair's two responses go
through the same scorer.

Preference accuracy: the fraction of pairs the model orders like the labels, r_c > r_r.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from numpy_impl.layers.activations import Tanh, sigmoid, softplus
from numpy_impl.layers.linear import Linear
from numpy_impl.layers.losses import REDUCTIONS, reduce, reduce_backward
from numpy_impl.module import Module


def bradley_terry_forward(r_chosen: np.ndarray, r_rejected: np.ndarray, margin: float = 0.0,
                          reduction: str = "mean"):
    """L = reduce(softplus(-(r_c - r_r - m))); returns (L, cache)."""
    d = r_chosen - r_rejected - margin                 # (N,)
    losses = softplus(-d)                              # (N,)  -log σ(d), stable for any d
    return reduce(losses, reduction), (d, reduction)


def bradley_terry_backward(grad_output: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray]:
    """(dL/dr_chosen, dL/dr_rejected)."""
    d, reduction = cache
    dl = reduce_backward(grad_output, d.shape, reduction)  # (N,)  through the reduction
    dd = -dl * sigmoid(-d)                             # (N,)  softplus' = σ, times d(-d)/dd
    return dd, -dd                                     # d = r_c - r_r - m


class RewardModel(Module):
    """MLP scorer fc1 -> tanh -> fc2 and the Bradley–Terry loss of preference pairs.

    ``forward(chosen, rejected)``: chosen, rejected (N, D); returns the loss (a 0-d array,
    or (N,) with ``reduction="none"``). ``score(x)`` is the reward r(x) of rows x (M, D).
    ``intermediates``: the scores ``r_chosen`` and ``r_rejected``; after ``backward``,
    ``intermediate_grads`` holds their gradients.
    """

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
        self.fc1 = Linear(in_features, hidden_features)  # W1, b1
        self.act = Tanh()
        self.fc2 = Linear(hidden_features, 1, bias=False)  # W2 (no bias: it cancels)
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def _check(self, x: np.ndarray) -> None:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"RewardModel expects features (N, {self.in_features}), got shape "
                             f"{x.shape}")

    def score(self, x: np.ndarray) -> np.ndarray:
        """r(x) for rows x (M, D): (M,)."""
        self._check(np.asarray(x))
        return self.fc2(self.act(self.fc1(x)))[:, 0]     # (M,)

    def score_backward(self, grad_r: np.ndarray) -> np.ndarray:
        """dL/dx from dL/dr (M,), adding into the parameter grads."""
        dh = self.fc2.backward(grad_r[:, None])          # (M, H)  r = h W2^T
        da = self.act.backward(dh)                       # (M, H)  h = tanh(a)
        return self.fc1.backward(da)                     # (M, D)  a = x W1^T + b1

    def forward(self, chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
        chosen, rejected = np.asarray(chosen), np.asarray(rejected)
        if chosen.shape != rejected.shape:
            raise ValueError(f"chosen and rejected must have the same shape, got {chosen.shape} "
                             f"and {rejected.shape}")
        self._check(chosen)
        n = chosen.shape[0]
        r = self.score(np.concatenate([chosen, rejected]))  # (2N,) one pass, chosen first
        r_chosen, r_rejected = r[:n], r[n:]                 # (N,), (N,)
        loss, self._cache = bradley_terry_forward(r_chosen, r_rejected, self.margin,
                                                  self.reduction)
        self.intermediates = {"r_chosen": r_chosen, "r_rejected": r_rejected}
        return loss

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dr_chosen, dr_rejected = bradley_terry_backward(grad_output, self._cache)  # (N,) each
        self.intermediate_grads = {"r_chosen": dr_chosen, "r_rejected": dr_rejected}
        dx = self.score_backward(np.concatenate([dr_chosen, dr_rejected]))        # (2N, D)
        n = dr_chosen.shape[0]
        return dx[:n], dx[n:]                                                      # split

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, hidden_features={self.hidden_features}, "
                f"margin={self.margin}, reduction={self.reduction!r}")


def train_step(model: RewardModel, optimizer: Any, chosen: np.ndarray,
               rejected: np.ndarray) -> float:
    """One step on a batch of pairs: forward, zero the grads, backward, update; the loss."""
    loss = model(chosen, rejected)                       # ()
    optimizer.zero_grad()
    model.backward(np.ones((), dtype=loss.dtype))        # dL/dL = 1
    optimizer.step()
    return float(loss)


def preference_margins(model: RewardModel, chosen: np.ndarray,
                       rejected: np.ndarray) -> np.ndarray:
    """r(chosen) - r(rejected) per pair (no gradient kept)."""
    return model.score(chosen) - model.score(rejected)  # (N,)


def preference_accuracy(model: RewardModel, chosen: np.ndarray, rejected: np.ndarray) -> float:
    """The fraction of pairs ordered as labelled: r(chosen) > r(rejected)."""
    return float(np.mean(preference_margins(model, chosen, rejected) > 0))
