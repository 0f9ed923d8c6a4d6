r"""Calibration by hand: is a classifier's confidence its accuracy?

A classifier with probabilities p_i = softmax(z_i) over K classes is *calibrated* when, among
the points it gives confidence c, a fraction c is right: P(y = ŷ | p̂ = c) = c. Over-fitted
networks are over-confident: their confidence exceeds their accuracy.

Binning. Scores s_1..s_N in [0, 1] are cut into M bins; bin b holds the set B_b and has

    n_b = |B_b|,   conf_b = (1/n_b) Σ_{i∈B_b} s_i,   acc_b = (1/n_b) Σ_{i∈B_b} h_i

where h_i ∈ {0, 1} says whether the event the score predicts happened (empty bins: 0, 0).

- equal width ("uniform"): B_b = {i : s_i ∈ (b/M, (b+1)/M]} (right-closed as in Guo et al.
  2017, with s = 0 in the first bin): b_i = clip(ceil(M s_i) - 1, 0, M - 1);
- equal mass ("quantile"): sort the scores (stably: equal scores keep their order); the point of
  rank r (0-based) goes to bin b_i = floor(r M / N), so every bin holds floor or ceil of N/M.

What is scored:

- top-label: s_i = max_k p_ik (the confidence), h_i = [argmax_k p_ik = y_i] (first maximum);
- classwise: for every class k, s_i = p_ik and h_i = [y_i = k]; the error is the mean over k.

The calibration error of one set of bins, in three norms (gap_b = |acc_b - conf_b|):

    L1  (ECE):  Σ_b (n_b / N) gap_b
    L2:         sqrt( Σ_b (n_b / N) gap_b² )
    max (MCE):  max_b gap_b                      (empty bins count as gap 0)

The reliability diagram draws acc_b against conf_b per bin (the diagonal is calibration).

Temperature scaling (Guo et al. 2017) divides the logits by one scalar T > 0 fitted on a
validation set: z' = z / T leaves the argmax (and the accuracy) unchanged and softens (T > 1) or
sharpens (T < 1) the probabilities. T minimizes the validation NLL
L(T) = -(1/N) Σ_i log softmax(z_i / T)_{y_i}, here by gradient descent T <- T - lr dL/dT.
Gradients of the scaling z' = z / T, for an upstream gradient g = dL/dz':

    dL/dz = g / T,        dL/dT = Σ g ⊙ (-z / T²) = -(1/T) Σ g ⊙ z'

with g = (softmax(z') - onehot(y)) / N from the cross-entropy (``CrossEntropyLoss``).
"""
from __future__ import annotations

import numpy as np

from numpy_impl.layers.losses import CrossEntropyLoss
from numpy_impl.module import Module, Parameter
from numpy_impl.random import default_dtype
from numpy_impl.training.optimizers import SGD

__all__ = ["NORMS", "STRATEGIES", "MODES", "top_label", "bin_indices", "calibration_bins",
           "calibration_error", "CalibrationError", "TemperatureScaling", "nll",
           "fit_temperature"]

NORMS = ("l1", "l2", "max")
STRATEGIES = ("uniform", "quantile")
MODES = ("top-label", "classwise")


def top_label(probs: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confidence max_k p_ik and correctness [argmax_k p_ik = y_i] (as 0/1 in probs' dtype)."""
    confidence = probs.max(axis=1)                                   # (N,)
    correct = (probs.argmax(axis=1) == target).astype(probs.dtype)   # (N,) first maximum wins
    return confidence, correct


def bin_indices(scores: np.ndarray, n_bins: int, strategy: str = "uniform") -> np.ndarray:
    """The bin of every score along the last axis: (..., N) int64 in [0, n_bins)."""
    if strategy == "uniform":  # (b/M, (b+1)/M]: ceil(M s) - 1, and s = 0 joins the first bin
        return np.clip(np.ceil(scores * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    if strategy == "quantile":  # rank r -> floor(r M / N); a stable sort orders equal scores
        n = scores.shape[-1]
        order = np.argsort(scores, axis=-1, kind="stable")           # (..., N)
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(n), axis=-1)       # (..., N) rank of each
        return ranks * n_bins // n
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


def calibration_bins(scores: np.ndarray, hits: np.ndarray, n_bins: int,
                     strategy: str = "uniform") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_b, conf_b, acc_b), each (..., M), for scores and 0/1 hits of shape (..., N)."""
    bins = bin_indices(scores, n_bins, strategy)                     # (..., N)
    rows = int(np.prod(scores.shape[:-1]))
    # one bincount for all rows at once: row j's bin b becomes the flat slot j M + b
    flat = (bins.reshape(rows, -1) + n_bins * np.arange(rows)[:, None]).reshape(-1)
    shape = scores.shape[:-1] + (n_bins,)
    count = np.bincount(flat, minlength=rows * n_bins).reshape(shape).astype(scores.dtype)
    score_sum = np.bincount(flat, scores.reshape(-1), rows * n_bins).reshape(shape)
    hit_sum = np.bincount(flat, hits.reshape(-1), rows * n_bins).reshape(shape)
    safe = np.maximum(count, 1)                                      # empty bins: 0 / 1 = 0
    return count, (score_sum / safe).astype(scores.dtype), (hit_sum / safe).astype(scores.dtype)


def calibration_error(probs: np.ndarray, target: np.ndarray, n_bins: int = 15,
                      norm: str = "l1", strategy: str = "uniform", mode: str = "top-label"
                      ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The calibration error (0-d) and its bins (n_b, conf_b, acc_b): (M,) for top-label,
    (K, M) for classwise."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if mode == "top-label":
        scores, hits = top_label(probs, target)                      # (N,), (N,)
    elif mode == "classwise":
        scores = probs.T                                             # (K, N)
        hits = (target[None, :] == np.arange(probs.shape[1])[:, None]).astype(probs.dtype)
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    count, conf, acc = calibration_bins(scores, hits, n_bins, strategy)  # (..., M)
    weight = count / scores.shape[-1]                                # n_b / N
    gap = np.abs(acc - conf)                                         # (..., M)
    if norm == "l1":
        error = np.sum(weight * gap, axis=-1)
    elif norm == "l2":
        error = np.sqrt(np.sum(weight * gap ** 2, axis=-1))
    else:
        error = np.max(gap, axis=-1)
    return np.asarray(np.mean(error), dtype=probs.dtype), (count, conf, acc)  # mean over k


class CalibrationError:
    """A metric object like torchmetrics' ``MulticlassCalibrationError``: call it on
    probabilities (N, K) and targets (N,); ``bins`` then holds the reliability diagram."""

    def __init__(self, n_bins: int = 15, norm: str = "l1", strategy: str = "uniform",
                 mode: str = "top-label") -> None:
        self.n_bins, self.norm, self.strategy, self.mode = n_bins, norm, strategy, mode
        self.bins: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __call__(self, probs: np.ndarray, target: np.ndarray) -> np.ndarray:
        error, self.bins = calibration_error(probs, target, self.n_bins, self.norm,
                                             self.strategy, self.mode)
        return error


class TemperatureScaling(Module):
    """z' = z / T with one learnable temperature (shape (1,), like ``torch.ones(1) * t``)."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = Parameter(np.full(1, temperature, dtype=default_dtype()))

    def forward(self, logits: np.ndarray) -> np.ndarray:
        self._scaled = logits / self.temperature.data                # (N, K) z' = z / T
        return self._scaled

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        t = self.temperature.data
        # dL/dT = Σ g ⊙ dz'/dT, with dz'/dT = -z / T² = -z' / T
        self.temperature.grad += -np.sum(grad_output * self._scaled) / t  # (1,)
        return grad_output / t                                       # dL/dz = g dz'/dz = g / T



def nll(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """-(1/N) Σ_i log softmax(z_i)_{y_i}: the cross-entropy of the logits."""
    return CrossEntropyLoss()(logits, target)


def fit_temperature(scaler: TemperatureScaling, logits: np.ndarray, target: np.ndarray,
                    lr: float = 2.0, steps: int = 300) -> dict[str, np.ndarray]:
    """Gradient descent on the validation NLL over T alone; the logits are data.

    Returns the trajectory: ``temperature`` (steps + 1,) and ``nll`` (steps + 1,), the NLL at
    each temperature (the last entry is the fitted model's)."""
    loss_fn = CrossEntropyLoss()
    optimizer = SGD(scaler.parameters(), lr=lr)
    temperatures, losses = [], []
    for step in range(steps + 1):
        optimizer.zero_grad()
        loss = loss_fn(scaler(logits), target)                       # L(T)
        temperatures.append(scaler.temperature.data[0])
        losses.append(loss)
        if step == steps:
            break
        scaler.backward(loss_fn.backward(np.ones_like(loss)))        # dL/dz' then dL/dT
        optimizer.step()                                             # T <- T - lr dL/dT
    return {"temperature": np.array(temperatures), "nll": np.array(losses)}

