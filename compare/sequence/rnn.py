"""Compare ``RNN`` (Elman, tanh or ReLU): the output sequence and h_n; gradients of the input,
of h0 (when given) and of every layer's and direction's weight_ih, weight_hh, bias_ih,
bias_hh -- the NumPy twin's backpropagation through time against autograd through the
written-out recurrence.

Witness: ``torch.nn.RNN`` (its fused kernel) with the same constructor and state_dict. Every
case draws random upstream gradients for both outputs, so the gradient reaching the last
step from h_n and the one from the output sequence are both exercised.

This file also holds what the recurrent concepts (``rnn``, ``lstm``, ``gru``) share:

- ``run_recurrent``, their runner. The engine's module runner passes inputs positionally and
  expects one gradient per input; a recurrent layer takes ``hx`` -- a tuple (h0, c0) for the
  LSTM -- and a dropout mask by keyword, and returns its state gradients nested the same way.
  The runner draws input, h0 (c0) and the keep-masks once, hands them to both twins, names
  everything as the engine does (``out.0``, ``out.1.0``, ``grad.input.h0``, ...) and checks
  the NumPy backward by central differences on a seeded sample of each tensor.
- ``layer_by_layer(nn.LSTM)``: the built-in witness of a case with dropout between layers.
  ``nn.LSTM`` draws its masks inside its fused kernel, where nobody can hand it ours; this
  witness runs the built-in one layer at a time (``torch.func.functional_call`` with the
  twin's parameters) and applies the case's masks in between.

Benchmark size: (T, B, I) -> H = (50, 32, 64) -> 128

Run: ``python -m compare.sequence.rnn``.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from compare.concept import Bench, Case, Concept, Outcome, Trial, bernoulli, randn
from compare.finite_diff import numerical_gradient, weighted_sum
from compare.runner import flatten, initial_state, numpy_twin, torch_module, unflatten
from numpy_impl.sequence import rnn as numpy_impl_rnn
from torch_impl.sequence import rnn as torch_impl_rnn

FD_SAMPLE = 16  # elements per tensor checked by central differences (a seeded sample)
STATE_NAMES = ("h0", "c0")


# --- the built-in witness for dropout between layers -------------------------------------------
@functools.cache
def layer_by_layer(builtin: type) -> type:
    """A module with ``builtin``'s constructor and state_dict that runs ``builtin`` one layer
    at a time and applies ``forward(..., dropout_mask)``'s masks between layers."""

    class LayerByLayer(nn.Module):
        replays_masks = True

        def __init__(self, **init: Any) -> None:
            super().__init__()
            reference = builtin(**init)
            for name, param in reference.named_parameters():   # the same names and order
                setattr(self, name, param)
            self.init = dict(init)
            self.directions = 2 if init.get("bidirectional") else 1
            self.lstm = builtin is nn.LSTM
            width = self.directions * (init.get("proj_size", 0) or init["hidden_size"])
            one = dict(init, num_layers=1, dropout=0.0, batch_first=False)
            self.layers = [builtin(**dict(one, input_size=init["input_size"] if k == 0
                                          else width))
                           for k in range(init.get("num_layers", 1))]   # a list: unregistered

        def forward(self, input: torch.Tensor, hx: Any = None,
                    dropout_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
            batched, p = input.dim() == 3, self.init.get("dropout", 0.0)
            x = input if batched else input.unsqueeze(1)
            mask = dropout_mask if batched else dropout_mask.unsqueeze(2)
            if batched and self.init.get("batch_first"):
                x, mask = x.transpose(0, 1), mask.transpose(1, 2)
            states = None if hx is None else (tuple(hx) if self.lstm else (hx,))
            if states is not None and not batched:
                states = tuple(s.unsqueeze(1) for s in states)
            finals = []
            for k, layer in enumerate(self.layers):
                own = {name.replace("_l0", f"_l{k}"): name for name, _ in
                       layer.named_parameters()}
                weights = {name: getattr(self, mine) for mine, name in own.items()}
                rows = slice(k * self.directions, (k + 1) * self.directions)
                layer_hx = None if states is None else tuple(s[rows] for s in states)
                if layer_hx is not None and not self.lstm:
                    layer_hx = layer_hx[0]
                x, last = functional_call(layer, weights, (x, layer_hx))
                finals.append(last if self.lstm else (last,))
                if k < len(self.layers) - 1 and self.training and p > 0:
                    x = x * mask[k] * (0.0 if p == 1 else 1.0 / (1.0 - p))
            states_n = tuple(torch.cat(s) for s in zip(*finals, strict=True))
            if not batched:
                x, states_n = x.squeeze(1), tuple(s.squeeze(1) for s in states_n)
            elif self.init.get("batch_first"):
                x = x.transpose(0, 1)
            return x, (states_n if self.lstm else states_n[0])

    LayerByLayer.__name__ = LayerByLayer.__qualname__ = f"{builtin.__name__}LayerByLayer"
    return LayerByLayer


# --- cases ---------------------------------------------------------------------------------------
def recurrent_case(name: str, twins: tuple[type, type, type], *, states: int = 1,
                   steps: int = 5, batch: int = 3, input_size: int = 4, hidden_size: int = 6,
                   hx: bool = False, unbatched: bool = False, mask: bool = False,
                   train: bool = True, **init: Any) -> Case:
    """A case of a recurrent layer: the input in the case's layout, h0 (and c0) when ``hx``,
    the keep-masks between layers (drawn once, shaped like the output) when ``mask``."""
    numpy_cls, torch_cls, builtin = twins
    init = dict(input_size=input_size, hidden_size=hidden_size) | init
    layers = init.get("num_layers", 1)
    count = layers * (2 if init.get("bidirectional") else 1)
    out_size = init.get("proj_size", 0) or hidden_size
    width = out_size * (2 if init.get("bidirectional") else 1)
    if unbatched:
        lead, state_lead = (steps,), (count,)
    elif init.get("batch_first"):
        lead, state_lead = (batch, steps), (count, batch)
    else:
        lead, state_lead = (steps, batch), (count, batch)
    inputs = dict(input=randn(*lead, input_size))
    if hx:
        for state, size in zip(STATE_NAMES[:states], (out_size, hidden_size)[:states],
                               strict=True):
            inputs[state] = randn(*state_lead, size, scale=0.5)
    p = init.get("dropout", 0.0)
    if mask:
        inputs["dropout_mask"] = bernoulli(1.0 - p, layers - 1, *lead, width)
        if 0 < p < 1:                                  # the fused kernel cannot take our masks
            builtin = layer_by_layer(builtin)
    return Case(name, numpy=numpy_cls, torch=torch_cls, builtin=builtin, init=init,
                inputs=inputs, train=train, options=dict(states=states))


# --- the runner ----------------------------------------------------------------------------------
def _call(module: Any, inputs: dict[str, Any], states: int) -> Any:
    """module(input, hx[, dropout_mask=...]) with hx = h0, (h0, c0) or None."""
    given = [inputs[n] for n in STATE_NAMES[:states] if n in inputs]
    hx = None if not given else (given[0] if states == 1 else tuple(given))
    if "dropout_mask" in inputs:
        return module(inputs["input"], hx, dropout_mask=inputs["dropout_mask"])
    return module(inputs["input"], hx)


def _torch_values(module: nn.Module, inputs: dict[str, np.ndarray], states: int, trial: Trial,
                  upstream: dict[str, np.ndarray] | None, rng: np.random.Generator):
    """Forward and backward of a torch module; every named value, and the upstream used."""
    leaves = {n: torch.from_numpy(np.array(v, copy=True)).to(trial.device)
              for n, v in inputs.items()}
    for tensor in leaves.values():
        if tensor.is_floating_point():
            tensor.requires_grad_(True)
    outputs = flatten(_call(module, leaves, states))
    if upstream is None:                               # drawn once, from the case's Generator
        upstream = {n: trial.cast(rng.standard_normal(tuple(t.shape))) for n, t in outputs}
    torch.autograd.backward([t for _, t in outputs],
                            [torch.from_numpy(upstream[n]).to(trial.device) for n, _ in outputs])
    values = {n: t.detach().cpu().numpy() for n, t in outputs}
    for name, tensor in leaves.items():
        if tensor.requires_grad:
            values[f"grad.input.{name}"] = tensor.grad.cpu().numpy()
    for name, param in module.named_parameters():
        values[f"grad.param.{name}"] = param.grad.cpu().numpy()
    return values, upstream


def _numpy_values(module: Any, inputs: dict[str, np.ndarray], states: int,
                  upstream: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Forward and backward of a NumPy twin (or a user's class), named as the torch side."""
    output = _call(module, inputs, states)
    values = {n: np.asarray(v) for n, v in flatten(output)}
    grads = module.backward(unflatten(output, upstream))
    given = [n for n in STATE_NAMES[:states] if n in inputs]
    if given:
        shape_ok = isinstance(grads, tuple) and len(grads) == 2 and (
            states == 1 or (isinstance(grads[1], tuple) and len(grads[1]) == 2))
        if not shape_ok:
            expected = "(grad_input, grad_h0)" if states == 1 else \
                "(grad_input, (grad_h0, grad_c0))"
            raise ValueError(f"{type(module).__name__}.backward must return {expected} when "
                             f"forward was given hx, got {type(grads).__name__}")
        grads, state_grads = grads[0], (grads[1],) if states == 1 else grads[1]
        values.update({f"grad.input.{n}": np.asarray(g)
                       for n, g in zip(given, state_grads, strict=True)})
    values["grad.input.input"] = np.asarray(grads)
    for name, param in module.named_parameters():
        values[f"grad.param.{name}"] = param.grad
    return values


def _finite_differences(module: Any, inputs: dict[str, np.ndarray], states: int,
                        upstream: dict[str, np.ndarray], analytic: dict[str, np.ndarray],
                        seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Central differences of sum(upstream * output) on a seeded sample of every float input
    and parameter, against the NumPy backward's values at the same elements."""
    arrays = {n: np.array(v, copy=True) for n, v in inputs.items()}
    grad_output = unflatten(_call(module, arrays, states), upstream)
    loss = lambda: weighted_sum(_call(module, arrays, states), grad_output)  # noqa: E731
    targets = {f"grad.input.{n}": a for n, a in arrays.items()
               if np.issubdtype(a.dtype, np.floating)}
    targets |= {f"grad.param.{n}": p.data for n, p in module.named_parameters()}
    pick = np.random.default_rng(seed + 1)
    result = {}
    for name, array in targets.items():
        if name not in analytic:
            continue
        index = np.sort(pick.choice(array.size, min(FD_SAMPLE, array.size), replace=False))
        result[name] = (np.asarray(analytic[name]).reshape(-1)[index],
                        numerical_gradient(loss, array, index))
    return result


def run_recurrent(case: Case, trial: Trial, numpy_cls: Any = None,
                  torch_cls: Any = None) -> Outcome:
    """One forward and backward of each twin (a user's class in place of either), the
    built-in witness on the same data, and finite differences of the NumPy backward."""
    rng = trial.rng()
    state = initial_state(case, trial, rng)
    inputs = {name: trial.cast(draw(rng)) for name, draw in case.inputs.items()}
    states = case.options["states"]
    twin = torch_module(torch_cls or case.torch, case, state, trial)
    torch_values, upstream = _torch_values(twin, inputs, states, trial, None, rng)
    mine = numpy_twin(case, state, trial, numpy_cls)
    numpy_values = _numpy_values(mine, {k: v.copy() for k, v in inputs.items()}, states,
                                 upstream)
    outcome = Outcome(numpy=numpy_values, torch=torch_values, inputs=inputs)
    if trial.builtin and case.builtin is not None:
        builtin = torch_module(case.builtin, case, state, trial)
        given = inputs if getattr(builtin, "replays_masks", False) else \
            {k: v for k, v in inputs.items() if k != "dropout_mask"}   # p = 1 or eval: no mask
        outcome.builtin, _ = _torch_values(builtin, given, states, trial, upstream, rng)
    if trial.fd and case.fd and trial.dtype == "float64":
        outcome.fd = _finite_differences(numpy_twin(case, state, trial, numpy_cls), inputs,
                                         states, upstream, numpy_values, trial.seed)
    return outcome


_TWINS = (numpy_impl_rnn.RNN, torch_impl_rnn.RNN, nn.RNN)


def _case(name: str, **kwargs: Any) -> Case:
    return recurrent_case(name, _TWINS, **kwargs)


CONCEPT = Concept(
    name="rnn",
    family="sequence",
    summary="Elman RNN h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), backprop through time",
    compares="output sequence and h_n; grads of the input, h0 and every layer's and "
             "direction's weight_ih, weight_hh, bias_ih, bias_hh (tanh and ReLU, 1-2 layers, "
             "bidirectional, dropout between layers, batch_first, unbatched)",
    witness="nn.RNN (layer by layer with the masks for dropout)",
    run=run_recurrent,
    bench=Bench("RNN(64, 128) (tanh) on x (T, B, I) = (50, 32, 64)",
                cases=(_case("bench", steps=50, batch=32, input_size=64, hidden_size=128),)),
    cases=[
        _case("tanh"),
        _case("h0-given", hx=True),
        _case("batch-first", batch_first=True),
        _case("batch-first-h0", batch_first=True, hx=True),
        _case("two-layers", num_layers=2, hx=True),
        _case("two-layers-no-h0", num_layers=2, batch_first=True),
        _case("relu", nonlinearity="relu"),
        _case("relu-two-layers-h0", num_layers=2, nonlinearity="relu", hx=True),
        _case("no-bias", bias=False, hx=True),
        _case("sequence-length-1", steps=1, hx=True),
        _case("batch-of-one", batch=1, batch_first=True, hx=True),
        _case("unbatched", unbatched=True, hx=True),
        _case("unbatched-no-h0", unbatched=True, num_layers=2),
        _case("bidirectional", bidirectional=True, hx=True),
        _case("bidirectional-two-layers", bidirectional=True, num_layers=2, batch_first=True,
              hx=True, input_size=3, hidden_size=4),
        _case("bidirectional-unbatched", bidirectional=True, unbatched=True, num_layers=2),
        _case("dropout", num_layers=2, dropout=0.4, mask=True, hx=True),
        _case("dropout-bidirectional-batch-first", num_layers=3, dropout=0.5, mask=True,
              bidirectional=True, batch_first=True, steps=4, input_size=3, hidden_size=4),
        _case("dropout-eval", num_layers=2, dropout=0.5, train=False, hx=True),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
