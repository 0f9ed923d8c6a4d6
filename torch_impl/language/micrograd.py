r"""micrograd in PyTorch: the same scalar expressions on 0-d tensors; autograd is the engine.

A micrograd ``Value`` is a 0-d tensor with ``requires_grad=True``: ``.data`` is its number,
``.grad`` its gradient after ``.backward()``, and the operators ``+ - * / **`` (numbers on either
side), ``.relu()``, ``.tanh()``, ``.exp()``, ``.log()``, ``.sigmoid()`` are tensor methods
already -- so an expression written for micrograd runs unchanged on tensors:

    x = Value(-4.0); z = 2 * x + 2 + x; y = (z * z).relu() + z * x
    y.backward()                                     # x.grad == dy/dx

What micrograd does by hand (record each operation's operands and local derivative, visit the
graph in reverse topological order, ADD each contribution into ``grad``) autograd does in C++:
every tensor op records a ``grad_fn`` node, and ``backward`` runs them in reverse order,
summing the gradients of a tensor used several times. Only leaves keep ``.grad`` unless an
intermediate asks for it with ``retain_grad()``.

``Neuron`` / ``Layer`` / ``MLP`` are ``nn.Module``s whose weights are 0-d ``nn.Parameter``s, one
per micrograd Value, under the NumPy twin's names (``layers.0.neurons.1.w.2``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = ("tanh", "relu")


def Value(data: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:  # noqa: N802
    """A micrograd leaf: a 0-d tensor that autograd will compute ``.grad`` for."""
    return torch.tensor(data, dtype=dtype, requires_grad=True)


class Neuron(nn.Module):
    """act(sum_i w_i x_i + b) with w_i, b ~ U(-1, 1); linear if not ``nonlin``."""

    def __init__(self, nin: int, nonlin: bool = True, activation: str = "tanh") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.w = nn.ParameterList(nn.Parameter(torch.empty(()).uniform_(-1.0, 1.0))
                                  for _ in range(nin))
        self.b = nn.Parameter(torch.empty(()).uniform_(-1.0, 1.0))
        self.nonlin, self.activation = nonlin, activation

    def forward(self, x: Sequence[torch.Tensor | float]) -> torch.Tensor:
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)  # w . x + b
        if not self.nonlin:
            return act
        return act.tanh() if self.activation == "tanh" else act.relu()


class Layer(nn.Module):
    """``nout`` independent neurons reading the same inputs."""

    def __init__(self, nin: int, nout: int, **kwargs: object) -> None:
        super().__init__()
        self.neurons = nn.ModuleList(Neuron(nin, **kwargs) for _ in range(nout))

    def forward(self, x: Sequence[torch.Tensor | float]) -> torch.Tensor | list[torch.Tensor]:
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out


class MLP(nn.Module):
    """Layers of sizes nin -> nouts[0] -> ... -> nouts[-1]; the last layer is linear."""

    def __init__(self, nin: int, nouts: Sequence[int], activation: str = "tanh") -> None:
        super().__init__()
        sizes = [nin, *nouts]
        self.layers = nn.ModuleList(Layer(sizes[i], sizes[i + 1], nonlin=i != len(nouts) - 1,
                                          activation=activation) for i in range(len(nouts)))

    def forward(self, x: Sequence[torch.Tensor | float]) -> torch.Tensor | list[torch.Tensor]:
        for layer in self.layers:
            x = layer(x)
            x = [x] if isinstance(x, torch.Tensor) else x
        return x[0] if len(x) == 1 else x
