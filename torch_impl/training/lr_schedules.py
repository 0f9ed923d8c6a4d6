"""Learning-rate schedules hand-written on torch's ``LRScheduler`` base, in closed form.

``torch.optim.lr_scheduler.LRScheduler`` supplies ``step()``, ``get_last_lr()``, ``last_epoch``
and ``state_dict()``; each class here only says what the rate is at step ``t = last_epoch``
(torch's own classes, the witnesses, compute most of them recursively instead)::

    StepLR             eta_0 * gamma^floor(t / step_size)
    ExponentialLR      eta_0 * gamma^t
    CosineAnnealingLR  eta_min + (eta_0 - eta_min) (1 + cos(pi t / T_max)) / 2
    LambdaLR           eta_0 * lambda(t);  warmup_cosine: (t + 1) / w, then a cosine to 0
    OneCycleLR         cosine up from max_lr / div_factor to max_lr over pct_start of the
                       steps, cosine down to max_lr / (div_factor final_div_factor);
                       momentum / beta1 cycles the other way
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch.optim.lr_scheduler import LRScheduler

__all__ = ["StepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR", "OneCycleLR",
           "warmup_cosine"]


class StepLR(LRScheduler):
    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [eta0 * self.gamma ** (self.last_epoch // self.step_size)
                for eta0 in self.base_lrs]


class ExponentialLR(LRScheduler):
    def __init__(self, optimizer: Any, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [eta0 * self.gamma ** self.last_epoch for eta0 in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0,  # noqa: N803 (torch's)
                 last_epoch: int = -1) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        phase = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (eta0 - self.eta_min) * phase for eta0 in self.base_lrs]


class LambdaLR(LRScheduler):
    def __init__(self, optimizer: Any, lr_lambda: Callable[[int], float],
                 last_epoch: int = -1) -> None:
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [eta0 * self.lr_lambda(self.last_epoch) for eta0 in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "lr_lambda"}


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up (t + 1) / w for t < w, then (1 + cos(pi (t - w) / (total - w))) / 2."""
    def factor(t: int) -> float:
        if t < warmup_steps:
            return (t + 1) / warmup_steps
        return (1 + math.cos(math.pi * (t - warmup_steps) / (total_steps - warmup_steps))) / 2
    return factor


def _cosine(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


class OneCycleLR(LRScheduler):
    """Two-phase cosine 1cycle (torch's defaults, ``three_phase=False``, ``anneal="cos"``)."""

    def __init__(self, optimizer: Any, max_lr: float | list[float],
                 total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float = 0.85, max_momentum: float = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1) -> None:
        if anneal_strategy != "cos" or three_phase:
            raise ValueError("this hand-written OneCycleLR has torch's defaults only: "
                             "anneal_strategy='cos', three_phase=False")
        self.total_steps = total_steps if total_steps is not None else epochs * steps_per_epoch
        self.warm_end = float(pct_start * self.total_steps) - 1     # last step of the warm-up
        groups = optimizer.param_groups
        peaks = max_lr if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        self.cycle_momentum = cycle_momentum
        self.use_beta1 = "betas" in optimizer.defaults
        for group, peak in zip(groups, peaks, strict=True):
            group["initial_lr"] = peak / div_factor
            group["max_lr"] = peak
            group["min_lr"] = group["initial_lr"] / final_div_factor
            if cycle_momentum:
                group["max_momentum"], group["base_momentum"] = max_momentum, base_momentum
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        lrs = []
        for group in self.optimizer.param_groups:
            if t <= self.warm_end:       # phase 1: lr up, momentum down
                pct = t / self.warm_end
                lr = _cosine(group["initial_lr"], group["max_lr"], pct)
                momentum = _cosine(group["max_momentum"], group["base_momentum"], pct) \
                    if self.cycle_momentum else None
            else:                        # phase 2: lr down to min_lr, momentum back up
                pct = (t - self.warm_end) / (self.total_steps - 1 - self.warm_end)
                lr = _cosine(group["max_lr"], group["min_lr"], pct)
                momentum = _cosine(group["base_momentum"], group["max_momentum"], pct) \
                    if self.cycle_momentum else None
            lrs.append(lr)
            if momentum is not None:
                if self.use_beta1:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
        return lrs
