"""Learning-rate schedules, shaped like ``torch.optim.lr_scheduler``, driving a NumPy optimizer.

A scheduler owns an optimizer and rewrites ``group["lr"]`` of each parameter group once per
``scheduler.step()`` (call it after ``optimizer.step()``). With ``eta_0`` the group's initial lr
(``base_lrs``) and ``t = last_epoch`` (0 right after construction), the closed forms are::

    StepLR             eta_t = eta_0 * gamma^floor(t / step_size)
    ExponentialLR      eta_t = eta_0 * gamma^t
    CosineAnnealingLR  eta_t = eta_min + (eta_0 - eta_min) (1 + cos(pi t / T_max)) / 2
    LambdaLR           eta_t = eta_0 * lambda(t)
    OneCycleLR         warm up from max_lr / div_factor to max_lr over pct_start of total_steps,
                       then anneal to max_lr / (div_factor * final_div_factor); each phase
                       a cosine:  a(start, end, pct) = end + (start - end) (1 + cos(pi pct)) / 2
                       with pct the fraction of the phase done; momentum (SGD's ``momentum`` or
                       Adam's beta1) cycles the other way, max_momentum -> base_momentum -> back.

Linear warm-up + cosine decay is ``LambdaLR(optimizer, warmup_cosine(warmup_steps, total))``:
``lambda(t) = (t + 1) / warmup_steps`` for ``t < warmup_steps``, then the cosine from 1 to 0.

torch computes StepLR, ExponentialLR and CosineAnnealingLR recursively from the current
``group["lr"]`` (chainable); the closed forms here agree with it to rounding as long as nothing
else writes ``group["lr"]``. ``state_dict()`` holds what torch's holds: every attribute but the
optimizer (``base_lrs``, ``last_epoch``, ``_step_count``, ``_last_lr``, the hyperparameters).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR",
           "OneCycleLR", "warmup_cosine"]


class LRScheduler:
    """Sets ``initial_lr`` in every group, then takes the first step (``last_epoch`` -1 -> 0)."""

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   "when resuming an optimizer")
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def get_lr(self) -> list[float]:
        """The learning rate of each group at ``self.last_epoch``."""
        raise TypeError(f"{type(self).__name__} does not define get_lr")

    def step(self) -> None:
        """Advance one epoch (or iteration) and write the new rates into the optimizer."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)


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
    """Half a cosine from eta_0 down to eta_min over T_max steps (and back up beyond it)."""

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0,  # noqa: N803 (torch's)
                 last_epoch: int = -1) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        phase = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (eta0 - self.eta_min) * phase for eta0 in self.base_lrs]


class LambdaLR(LRScheduler):
    """eta_t = eta_0 * lr_lambda(t): one function, or one per parameter group."""

    def __init__(self, optimizer: Any,
                 lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
                 last_epoch: int = -1) -> None:
        groups = len(optimizer.param_groups)
        if callable(lr_lambda):
            self.lr_lambdas = [lr_lambda] * groups
        else:
            if len(lr_lambda) != groups:
                raise ValueError(f"Expected {groups} lr_lambdas, but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [eta0 * f(self.last_epoch)
                for eta0, f in zip(self.base_lrs, self.lr_lambdas, strict=True)]


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """The multiplier of linear warm-up then cosine decay: (t + 1) / w while t < w, then
    (1 + cos(pi (t - w) / (total - w))) / 2, from 1 at t = w to 0 at t = total."""
    def factor(t: int) -> float:
        if t < warmup_steps:
            return (t + 1) / warmup_steps
        return (1 + math.cos(math.pi * (t - warmup_steps) / (total_steps - warmup_steps))) / 2
    return factor


def _anneal_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), torch's defaults: two phases, cosine annealing."""

    def __init__(self, optimizer: Any, max_lr: float | Sequence[float],
                 total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float = 0.85, max_momentum: float = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1) -> None:
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("You must define either total_steps OR (epochs AND "
                                 "steps_per_epoch)")
            total_steps = epochs * steps_per_epoch
        if total_steps <= 0:
            raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError("anneal_strategy must be one of 'cos' or 'linear', "
                             f"instead got {anneal_strategy}")
        self.total_steps = total_steps
        self._anneal = _anneal_cos if anneal_strategy == "cos" else _anneal_linear
        warm_end = float(pct_start * total_steps) - 1
        if three_phase:
            self._schedule_phases = [
                dict(end_step=warm_end, lr=("initial_lr", "max_lr"),
                     momentum=("max_momentum", "base_momentum")),
                dict(end_step=float(2 * pct_start * total_steps) - 2,
                     lr=("max_lr", "initial_lr"), momentum=("base_momentum", "max_momentum")),
                dict(end_step=total_steps - 1, lr=("initial_lr", "min_lr"),
                     momentum=("max_momentum", "max_momentum"))]
        else:
            self._schedule_phases = [
                dict(end_step=warm_end, lr=("initial_lr", "max_lr"),
                     momentum=("max_momentum", "base_momentum")),
                dict(end_step=total_steps - 1, lr=("max_lr", "min_lr"),
                     momentum=("base_momentum", "max_momentum"))]
        groups = optimizer.param_groups
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if last_epoch == -1:
            for group, peak in zip(groups, max_lrs, strict=True):
                group["initial_lr"] = peak / div_factor                   # the start
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor  # the end
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            defaults = getattr(optimizer, "defaults", {})
            if "momentum" not in defaults and "betas" not in defaults:
                raise ValueError("optimizer must support momentum or beta1 with "
                                 "`cycle_momentum` option enabled")
            self.use_beta1 = "betas" in defaults
            if last_epoch == -1:
                for group in groups:
                    self._set_momentum(group, max_momentum)
                    group["max_momentum"], group["base_momentum"] = max_momentum, base_momentum
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict[str, Any], value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"Tried to step {t} times. The specified number of total steps "
                             f"is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if t <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (t - start_step) / (end_step - start_step)     # fraction of phase
                    lr = self._anneal(group[phase["lr"][0]], group[phase["lr"][1]], pct)
                    if self.cycle_momentum:
                        momentum = self._anneal(group[phase["momentum"][0]],
                                                group[phase["momentum"][1]], pct)
                    break
                start_step = end_step
            lrs.append(lr)
            if self.cycle_momentum:
                self._set_momentum(group, momentum)
        return lrs

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "_anneal"}
