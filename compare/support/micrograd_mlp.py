"""The micrograd MLP trained for a few SGD steps: the loss written once for both twins, the
training loop (the lecture's, for either twin), the nn.Linear + torch.optim.SGD witness and
finite differences of the first step. A private helper of ``compare.language.micrograd``."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from compare.concept import Case, Trial
from compare.finite_diff import numerical_gradient
from numpy_impl.language import micrograd as numpy_twin


# --- the MLP, trained for a few steps ------------------------------------------------------------
def mlp_loss(scores: Sequence[Any], targets: Sequence[Any], params: Sequence[Any],
             options: dict[str, Any]) -> Any:
    """Written once for both twins: sum of squares, or micrograd's demo hinge loss
    mean(relu(1 - y * score)) + alpha * sum(p^2)."""
    if options["loss"] == "mse":
        return sum(((s - t) ** 2 for s, t in zip(scores, targets, strict=True)), 0.0)
    data_loss = sum(((1 + -t * s).relu() for s, t in zip(scores, targets, strict=True)), 0.0)
    reg_loss = options["alpha"] * sum((p * p for p in params), 0.0)
    return data_loss * (1.0 / len(scores)) + reg_loss


def _layer_matrix(model: Any, k: int, what: str) -> np.ndarray:
    """Layer k's [w | b] (or their grads) as an (nout, nin + 1) float array."""
    def number(p: Any) -> Any:
        v = getattr(p, what)
        return 0.0 if v is None else (v.item() if hasattr(v, "item") else v)
    rows = [[number(w) for w in n.w] + [number(n.b)] for n in model.layers[k].neurons]
    return np.array(rows)


def train_micrograd(model: Any, X: Any, y: Any, options: dict[str, Any],
                    dtype: np.dtype) -> dict[str, np.ndarray]:
    """The lecture's loop, for either twin: forward, zero_grad, backward, p.data -= lr p.grad."""
    record = {}
    for step in range(options["steps"]):
        scores = [model(x) for x in X]
        loss = mlp_loss(scores, list(y), model.parameters(), options)
        model.zero_grad()
        loss.backward()
        record[f"step{step}/loss"] = np.asarray(float(loss.data), dtype=dtype)
        for k in range(len(model.layers)):
            record[f"step{step}/grad.layers.{k}"] = _layer_matrix(model, k, "grad").astype(dtype)
        for p in model.parameters():
            p.data += -options["lr"] * p.grad  # plain SGD, by hand in both twins
        for k in range(len(model.layers)):
            record[f"step{step}/param.layers.{k}"] = _layer_matrix(model, k, "data").astype(dtype)
    return record


def train_builtin(state: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray,
                  case: Case, trial: Trial) -> dict[str, np.ndarray]:
    """The witness: nn.Linear layers with the same weights, batched, trained by torch.optim.SGD."""
    import torch
    from torch import nn
    options, init = case.options, case.init
    sizes = [init["nin"], *init["nouts"]]
    linears = []
    for k in range(len(sizes) - 1):
        linear = nn.Linear(sizes[k], sizes[k + 1]).to(trial.torch_dtype)
        weight = np.array([[state[f"layers.{k}.neurons.{j}.w.{i}"] for i in range(sizes[k])]
                           for j in range(sizes[k + 1])])  # (out, in): neuron j is row j
        bias = np.array([state[f"layers.{k}.neurons.{j}.b"] for j in range(sizes[k + 1])])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight))
            linear.bias.copy_(torch.from_numpy(bias))
        linears.append(linear)
    act = torch.tanh if init.get("activation", "tanh") == "tanh" else torch.relu
    params = [p for linear in linears for p in (linear.weight, linear.bias)]
    optimizer = torch.optim.SGD(params, lr=options["lr"])
    inputs, targets = torch.from_numpy(X), torch.from_numpy(y)
    record = {}
    for step in range(options["steps"]):
        h = inputs
        for k, linear in enumerate(linears):
            h = linear(h)
            h = act(h) if k < len(linears) - 1 else h
        scores = h[:, 0]
        if options["loss"] == "mse":
            loss = ((scores - targets) ** 2).sum()
        else:
            loss = torch.relu(1 - targets * scores).mean() \
                + options["alpha"] * sum((p * p).sum() for p in params)
        optimizer.zero_grad()
        loss.backward()
        record[f"step{step}/loss"] = loss.detach().numpy()
        for k, linear in enumerate(linears):
            record[f"step{step}/grad.layers.{k}"] = torch.cat(
                [linear.weight.grad, linear.bias.grad[:, None]], dim=1).numpy().copy()
        optimizer.step()
        for k, linear in enumerate(linears):
            record[f"step{step}/param.layers.{k}"] = torch.cat(
                [linear.weight, linear.bias[:, None]], dim=1).detach().numpy().copy()
    return record


def _mlp_fd(case: Case, state: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray,
            analytic: dict[str, np.ndarray],
            numpy_cls: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Central differences of the first step's loss with respect to every weight (float64)."""
    model = (numpy_cls or numpy_twin.MLP)(**case.init)
    model.to(np.float64)
    model.load_state_dict(state)
    params = model.parameters()
    point = np.array([p.data for p in params], dtype=np.float64)

    def loss() -> float:
        for p, x in zip(params, point, strict=True):
            p.data = x  # a NumPy float64 scalar, as the twin holds
        return float(mlp_loss([model(x) for x in X], list(y), params, case.options).data)
    numeric = numerical_gradient(loss, point)
    for p, x in zip(params, numeric, strict=True):
        p.grad = x  # read back per layer through the same layout as the analytic grads
    return {f"step0/grad.layers.{k}": (analytic[f"step0/grad.layers.{k}"],
                                       _layer_matrix(model, k, "grad"))
            for k in range(len(model.layers))}
