r"""Calibration in PyTorch: calibration errors, the reliability diagram, temperature scaling.

Bins over scores s_i in [0, 1]: n_b points, mean score conf_b and hit rate acc_b per bin;
equal width (b/M, (b+1)/M] (s = 0 in the first bin) or equal mass (rank r -> floor(r M / N),
stable order). Top-label: s = max_k p_k, hit = [argmax = y]; classwise: s = p_k, hit = [y = k]
for every k, errors averaged over k. Norms of gap_b = |acc_b - conf_b|: L1 Σ_b (n_b/N) gap_b
(ECE), L2 sqrt(Σ_b (n_b/N) gap_b²), max max_b gap_b.

Temperature scaling: z' = z / T, T fitted by gradient descent (``torch.optim.SGD``) on the
validation NLL -(1/N) Σ_i log softmax(z_i / T)_{y_i}; autograd gives dL/dT.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["NORMS", "STRATEGIES", "MODES", "top_label", "bin_indices", "calibration_bins",
           "calibration_error", "CalibrationError", "TemperatureScaling", "nll",
           "fit_temperature"]

NORMS = ("l1", "l2", "max")
STRATEGIES = ("uniform", "quantile")
MODES = ("top-label", "classwise")


def top_label(probs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence max_k p_ik and correctness [argmax_k p_ik = y_i] (0/1 in probs' dtype)."""
    confidence = probs.amax(dim=1)                                   # (N,)
    correct = (probs.argmax(dim=1) == target).to(probs.dtype)        # (N,) first maximum wins
    return confidence, correct


def bin_indices(scores: torch.Tensor, n_bins: int, strategy: str = "uniform") -> torch.Tensor:
    """The bin of every score along the last dim: (..., N) int64 in [0, n_bins)."""
    if strategy == "uniform":  # (b/M, (b+1)/M], s = 0 in the first bin
        return (torch.ceil(scores * n_bins).long() - 1).clamp(0, n_bins - 1)
    if strategy == "quantile":  # rank r -> floor(r M / N), equal scores in their given order
        n = scores.shape[-1]
        order = torch.sort(scores, dim=-1, stable=True).indices     # (..., N)
        ranks = torch.empty_like(order).scatter_(
            -1, order, torch.arange(n, device=scores.device).expand_as(order))
        return torch.div(ranks * n_bins, n, rounding_mode="floor")
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


def calibration_bins(scores: torch.Tensor, hits: torch.Tensor, n_bins: int,
                     strategy: str = "uniform"
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(n_b, conf_b, acc_b), each (..., M), for scores and 0/1 hits of shape (..., N)."""
    bins = bin_indices(scores, n_bins, strategy)                     # (..., N)
    zeros = scores.new_zeros(scores.shape[:-1] + (n_bins,))          # (..., M)
    count = zeros.scatter_add(-1, bins, torch.ones_like(scores))
    score_sum = zeros.scatter_add(-1, bins, scores)
    hit_sum = zeros.scatter_add(-1, bins, hits)
    safe = count.clamp(min=1)                                        # empty bins: 0 / 1 = 0
    return count, score_sum / safe, hit_sum / safe


def calibration_error(probs: torch.Tensor, target: torch.Tensor, n_bins: int = 15,
                      norm: str = "l1", strategy: str = "uniform", mode: str = "top-label"
                      ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The calibration error (0-d) and its bins: (M,) for top-label, (K, M) classwise."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if mode == "top-label":
        scores, hits = top_label(probs, target)                      # (N,), (N,)
    elif mode == "classwise":
        scores = probs.T                                             # (K, N)
        hits = nn.functional.one_hot(target, probs.shape[1]).T.to(probs.dtype)
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    count, conf, acc = calibration_bins(scores, hits, n_bins, strategy)  # (..., M)
    weight = count / scores.shape[-1]                                # n_b / N
    gap = (acc - conf).abs()
    if norm == "l1":
        error = (weight * gap).sum(-1)
    elif norm == "l2":
        error = (weight * gap ** 2).sum(-1).sqrt()
    else:
        error = gap.amax(-1)
    return error.mean(), (count, conf, acc)                          # mean over classes


class CalibrationError:
    """A metric object like torchmetrics' ``MulticlassCalibrationError``: call it on
    probabilities (N, K) and targets (N,); ``bins`` then holds the reliability diagram."""

    def __init__(self, n_bins: int = 15, norm: str = "l1", strategy: str = "uniform",
                 mode: str = "top-label") -> None:
        self.n_bins, self.norm, self.strategy, self.mode = n_bins, norm, strategy, mode
        self.bins: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @torch.no_grad()
    def __call__(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        error, self.bins = calibration_error(probs, target, self.n_bins, self.norm,
                                             self.strategy, self.mode)
        return error


class TemperatureScaling(nn.Module):
    """z' = z / T with one learnable temperature of shape (1,)."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.full((1,), temperature))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature                             # (N, K)



def nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-(1/N) Σ_i log softmax(z_i)_{y_i} = mean_i (logsumexp_k z_ik - z_{i, y_i})."""
    picked = logits.gather(1, target[:, None]).squeeze(1)            # (N,) z_{i, y_i}
    return (torch.logsumexp(logits, dim=1) - picked).mean()


def fit_temperature(scaler: TemperatureScaling, logits: torch.Tensor, target: torch.Tensor,
                    lr: float = 2.0, steps: int = 300) -> dict[str, torch.Tensor]:
    """Gradient descent on the validation NLL over T alone; returns ``temperature`` and
    ``nll``, (steps + 1,) each: the NLL at each temperature, the last is the fitted one's."""
    optimizer = torch.optim.SGD(scaler.parameters(), lr=lr)
    logits = logits.detach()                                         # data, not a parameter
    temperatures, losses = [], []
    for step in range(steps + 1):
        optimizer.zero_grad()
        loss = nll(scaler(logits), target)
        temperatures.append(scaler.temperature.detach()[0].clone())
        losses.append(loss.detach())
        if step == steps:
            break
        loss.backward()
        optimizer.step()
    return {"temperature": torch.stack(temperatures), "nll": torch.stack(losses)}
