"""Optimizers by hand: SGD, RMSprop, Adagrad, Adam and AdamW, shaped like ``torch.optim``.

An optimizer turns the gradient ``g_t = dL/dp`` accumulated in ``p.grad`` into an update of
``p.data``. It is built from ``model.parameters()`` (or from a list of parameter-group dicts,
each with its own options), and keeps per-parameter state between steps. Every update below is
torch's, term for term (``maximize`` flips the gradient first, ``weight_decay`` then adds
``lambda p`` to it -- an L2 penalty -- except in AdamW, where the decay is decoupled):

SGD, momentum mu, dampening tau, Nesterov::

    b_1 = g_1,    b_t = mu b_{t-1} + (1 - tau) g_t                   (momentum_buffer)
    d_t = g_t + mu b_t  (nesterov)   or   d_t = b_t   (or g_t without momentum)
    p_t = p_{t-1} - lr d_t

RMSprop, smoothing alpha::

    v_t = alpha v_{t-1} + (1 - alpha) g_t^2                          (square_avg)
    m_t = alpha m_{t-1} + (1 - alpha) g_t                            (grad_avg, centered only)
    s_t = sqrt(v_t - m_t^2) + eps  (centered)   or   sqrt(v_t) + eps
    b_t = mu b_{t-1} + g_t / s_t;  p_t = p_{t-1} - lr b_t          (momentum_buffer, mu > 0)
    p_t = p_{t-1} - lr g_t / s_t                                     (mu = 0)

Adagrad, learning-rate decay eta::

    S_t = S_{t-1} + g_t^2   (S_0 = initial_accumulator_value)        (sum)
    p_t = p_{t-1} - lr / (1 + (t - 1) eta) * g_t / (sqrt(S_t) + eps)

Adam, betas (beta1, beta2)::

    m_t = beta1 m_{t-1} + (1 - beta1) g_t                            (exp_avg)
    v_t = beta2 v_{t-1} + (1 - beta2) g_t^2                          (exp_avg_sq)
    vmax_t = max(vmax_{t-1}, v_t)      (amsgrad: use vmax_t for v_t)  (max_exp_avg_sq)
    p_t = p_{t-1} - lr / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)

AdamW: first ``p <- p (1 - lr lambda)`` (decoupled weight decay), then Adam with no L2 term.

``state_dict()`` has torch's structure: ``{"state": {index: {...}}, "param_groups": [{...,
"params": [indices]}]}``, parameters numbered in group order, state entries named as torch
names them (``momentum_buffer``, ``square_avg``, ``grad_avg``, ``sum``, ``exp_avg``,
``exp_avg_sq``, ``max_exp_avg_sq``, ``step``), so a state dict moves between the twins (and to
``torch.optim``) by converting its arrays.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from numpy_impl.module import Parameter, to_numpy

__all__ = ["Optimizer", "SGD", "RMSprop", "Adagrad", "Adam", "AdamW"]


class Optimizer:
    """Parameter groups, per-parameter state, ``zero_grad`` and torch-shaped ``state_dict``."""

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        if isinstance(params, (Parameter, np.ndarray)):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Parameters or dicts, but got {type(params).__name__}")
        self.defaults: dict[str, Any] = dict(defaults)
        self.state: dict[Parameter, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group: its own options, the optimizer's defaults for the rest (as torch)."""
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Parameter) else list(params)
        for p in group["params"]:
            if not isinstance(p, Parameter):
                raise TypeError(f"optimizer can only optimize Parameters, got {type(p).__name__}")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self) -> None:
        """Reset every gradient to zero (NumPy Parameters always hold a grad array)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = np.zeros_like(p.data)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter from its ``grad``; returns ``closure()`` if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                self._update(p, p.grad, self.state.setdefault(p, {}), group)
        return loss

    def _update(self, p: Parameter, grad: np.ndarray, state: dict[str, Any],
                group: Mapping[str, Any]) -> None:
        raise TypeError(f"{type(self).__name__} does not define an update rule")

    # --- saving and restoring: torch's layout, parameters replaced by their index ------------
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {i: {...}}, "param_groups": [{..., "params": [i, ...]}]}``, copies.

        torch hands out references to its live state tensors; copies here mean a state dict
        saved mid-run stays as it was when saved, which is what saving is for.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: {k: copy.deepcopy(v) for k, v in s.items()}
                 for p, s in self.state.items() if s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore options and state saved by this optimizer or by its torch twin.

        Arrays may be ndarrays or torch tensors; they are cast to their parameter's dtype, and
        ``step`` becomes a Python float.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        params_by_index: dict[int, Parameter] = {}
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 "match the size of optimizer's group")
            params_by_index.update(zip(saved["params"], group["params"], strict=True))
        self.state = {}
        for key, saved_state in state_dict["state"].items():
            p = params_by_index[int(key)]
            entries = {}
            for name, value in saved_state.items():
                if name == "step":
                    entries[name] = float(to_numpy(value))
                else:
                    entries[name] = np.array(to_numpy(value), dtype=p.data.dtype, copy=True)
            self.state[p] = entries
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            for name, value in saved.items():
                if name != "params":
                    group[name] = copy.deepcopy(value)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _direction(grad: np.ndarray, p: Parameter, group: Mapping[str, Any]) -> np.ndarray:
    """g for minimizing (-g when maximizing), plus lambda p: the L2 penalty's gradient."""
    g = -grad if group["maximize"] else grad
    if group["weight_decay"] != 0:
        g = g + group["weight_decay"] * p.data
    return g


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False) -> None:
        _check(lr >= 0.0, f"Invalid learning rate: {lr}")
        _check(momentum >= 0.0, f"Invalid momentum value: {momentum}")
        _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        _check(not nesterov or (momentum > 0 and dampening == 0),
               "Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _update(self, p, grad, state, group):
        g = _direction(grad, p, group)                                    # g_t (+ lambda p)
        mu = group["momentum"]
        if mu != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.copy()                       # b_1 = g_1
            else:
                buf = state["momentum_buffer"]
                buf *= mu                                                 # b_t = mu b_{t-1}
                buf += (1.0 - group["dampening"]) * g                     #     + (1 - tau) g_t
            buf = state["momentum_buffer"]
            g = g + mu * buf if group["nesterov"] else buf                # d_t
        p.data -= group["lr"] * g                                         # p_t = p - lr d_t


class RMSprop(Optimizer):
    """Divide the gradient by a running RMS of its recent magnitudes (``torch.optim.RMSprop``)."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, *, maximize: bool = False) -> None:
        _check(lr >= 0.0, f"Invalid learning rate: {lr}")
        _check(eps >= 0.0, f"Invalid epsilon value: {eps}")
        _check(momentum >= 0.0, f"Invalid momentum value: {momentum}")
        _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        _check(alpha >= 0.0, f"Invalid alpha value: {alpha}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0.0
            state["square_avg"] = np.zeros_like(p.data)
            if group["momentum"] > 0:
                state["momentum_buffer"] = np.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(p.data)
        state["step"] += 1
        g = _direction(grad, p, group)
        alpha = group["alpha"]
        v = state["square_avg"]
        v *= alpha                                                        # v_t = alpha v_{t-1}
        v += (1.0 - alpha) * (g * g)                                      #     + (1-alpha) g^2
        if group["centered"]:
            m = state["grad_avg"]
            m += (1.0 - alpha) * (g - m)                                  # m_t, a running mean
            s = np.sqrt(v - m * m)                                        # sqrt of the variance
        else:
            s = np.sqrt(v)
        s += group["eps"]                                                 # s_t
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += g / s                                                  # b_t
            p.data -= group["lr"] * buf
        else:
            p.data -= group["lr"] * (g / s)


class Adagrad(Optimizer):
    """Per-coordinate step sizes shrinking with the summed squared gradient (``torch.optim``)."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False) -> None:
        _check(lr >= 0.0, f"Invalid learning rate: {lr}")
        _check(lr_decay >= 0.0, f"Invalid lr_decay value: {lr_decay}")
        _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        _check(initial_accumulator_value >= 0.0,
               f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        _check(eps >= 0.0, f"Invalid epsilon value: {eps}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))
        # torch creates Adagrad's state at construction, not at the first step
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p] = {"step": 0.0, "sum": np.full_like(
                    p.data, group["initial_accumulator_value"])}

    def _update(self, p, grad, state, group):
        state["step"] += 1
        t = state["step"]
        g = _direction(grad, p, group)
        clr = group["lr"] / (1 + (t - 1) * group["lr_decay"])             # decayed rate
        state["sum"] += g * g                                             # S_t
        p.data -= clr * (g / (np.sqrt(state["sum"]) + group["eps"]))


class Adam(Optimizer):
    """Adaptive moment estimation (``torch.optim.Adam``), L2 ``weight_decay`` and AMSGrad."""

    decoupled_weight_decay = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        _check(lr >= 0.0, f"Invalid learning rate: {lr}")
        _check(eps >= 0.0, f"Invalid epsilon value: {eps}")
        _check(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
        _check(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")
        _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0.0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        lr, (beta1, beta2), decay = group["lr"], group["betas"], group["weight_decay"]
        g = -grad if group["maximize"] else grad
        if decay != 0:
            if self.decoupled_weight_decay:
                p.data *= 1 - lr * decay                                  # AdamW: shrink p
            else:
                g = g + decay * p.data                                    # Adam: L2 gradient
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1.0 - beta1) * (g - m)                                      # m_t (torch's lerp)
        v *= beta2
        v += (1.0 - beta2) * (g * g)                                      # v_t
        bias_correction1 = 1 - beta1 ** t
        bias_correction2 = 1 - beta2 ** t
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]                                   # vmax_t
        denom = np.sqrt(v) / bias_correction2 ** 0.5 + group["eps"]       # sqrt(v_hat) + eps
        p.data -= (lr / bias_correction1) * (m / denom)                   # lr m_hat / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``): p <- p (1 - lr lambda) first."""

    decoupled_weight_decay = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
