"""Optimizers written out in torch: SGD, RMSprop, Adagrad, Adam and AdamW.

Each subclasses ``torch.optim.Optimizer`` (which supplies parameter groups, ``zero_grad``,
``state_dict`` and ``load_state_dict``) and writes its update rule in tensor ops under
``torch.no_grad()``; ``torch.optim``'s own classes are the witness. The formulas (see the NumPy
twin's docstring) are torch's, with the same state names (``momentum_buffer``, ``square_avg``,
``grad_avg``, ``sum``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``, ``step``)::

    SGD      b_t = mu b_{t-1} + (1 - tau) g_t;  p -= lr (g_t + mu b_t | b_t)
    RMSprop  v_t = alpha v_{t-1} + (1 - alpha) g_t^2;  p -= lr g_t / (sqrt(v_t [- m_t^2]) + eps)
    Adagrad  S_t = S_{t-1} + g_t^2;  p -= lr / (1 + (t-1) eta) g_t / (sqrt(S_t) + eps)
    Adam     m_t, v_t moving averages;
             p -= lr / (1 - beta1^t) m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)
    AdamW    p *= 1 - lr lambda, then Adam
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["SGD", "RMSprop", "Adagrad", "Adam", "AdamW"]


class _HandWritten(torch.optim.Optimizer):
    """``step`` loops over groups and parameters with gradients; subclasses give ``update``."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, p.grad, self.state[p], group)
        return loss

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        raise TypeError(f"{type(self).__name__} does not define an update rule")


def _direction(grad: torch.Tensor, p: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
    """g for minimizing (-g when maximizing), plus lambda p: the L2 penalty's gradient."""
    g = -grad if group["maximize"] else grad
    if group["weight_decay"] != 0:
        g = g + group["weight_decay"] * p
    return g


def _step_count(state: dict[str, Any]) -> float:
    """Advance the step counter; torch.optim keeps it as a 0-d tensor, either works here."""
    state["step"] = state.get("step", 0.0) + 1
    return float(state["step"])


class SGD(_HandWritten):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def update(self, p, grad, state, group):
        g = _direction(grad, p, group)
        mu = group["momentum"]
        if mu != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.clone()
            else:
                state["momentum_buffer"].mul_(mu).add_((1 - group["dampening"]) * g)
            buf = state["momentum_buffer"]
            g = g + mu * buf if group["nesterov"] else buf
        p.sub_(group["lr"] * g)


class RMSprop(_HandWritten):
    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def update(self, p, grad, state, group):
        if "square_avg" not in state:
            state["square_avg"] = torch.zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = torch.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
        _step_count(state)
        g = _direction(grad, p, group)
        alpha = group["alpha"]
        v = state["square_avg"].mul_(alpha).add_((1 - alpha) * g.square())
        if group["centered"]:
            m = state["grad_avg"].lerp_(g, 1 - alpha)
            s = (v - m.square()).sqrt() + group["eps"]
        else:
            s = v.sqrt() + group["eps"]
        if group["momentum"] > 0:
            buf = state["momentum_buffer"].mul_(group["momentum"]).add_(g / s)
            p.sub_(group["lr"] * buf)
        else:
            p.sub_(group["lr"] * (g / s))


class Adagrad(_HandWritten):
    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))
        for group in self.param_groups:  # torch.optim.Adagrad creates its state up front
            for p in group["params"]:
                self.state[p]["step"] = torch.tensor(0.0)
                self.state[p]["sum"] = torch.full_like(p, group["initial_accumulator_value"])

    def update(self, p, grad, state, group):
        t = _step_count(state)
        g = _direction(grad, p, group)
        clr = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        state["sum"].add_(g.square())
        p.sub_(clr * (g / (state["sum"].sqrt() + group["eps"])))


class Adam(_HandWritten):
    decoupled_weight_decay = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def update(self, p, grad, state, group):
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        t = _step_count(state)
        lr, (beta1, beta2), decay = group["lr"], group["betas"], group["weight_decay"]
        g = -grad if group["maximize"] else grad
        if decay != 0:
            if self.decoupled_weight_decay:
                p.mul_(1 - lr * decay)
            else:
                g = g + decay * p
        m = state["exp_avg"].lerp_(g, 1 - beta1)
        v = state["exp_avg_sq"].mul_(beta2).add_((1 - beta2) * g.square())
        if group["amsgrad"]:
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        denom = v.sqrt() / (1 - beta2 ** t) ** 0.5 + group["eps"]
        p.sub_(lr / (1 - beta1 ** t) * (m / denom))


class AdamW(Adam):
    decoupled_weight_decay = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
