r"""Vanishing gradients: a deep MLP of sigmoid, tanh or ReLU layers, with and without batch
normalization and residual connections, forward and backward by hand.

Layer k (k = 0 .. depth-1), input x_k of shape (B, F), a Linear(F, F) ``fc``, an optional
BatchNorm1d(F) ``bn`` and an activation f:

    a_k = x_k W_k^T + b_k                (B, F)
    z_k = BN(a_k)   (or a_k)             (B, F)
    h_k = f(z_k)                         (B, F)
    x_{k+1} = h_k   (plain)   or   x_k + h_k   (residual)

Backward, given g = dL/dx_{k+1} (each step is the imported layer's own backward):

    dL/dz_k = g * f'(z_k)                f' = s(1-s) <= 1/4 (sigmoid), 1 - tanh^2 <= 1, 1[z > 0]
    dL/da_k = BN backward of dL/dz_k     (or dL/dz_k)
    dL/dx_k = dL/da_k W_k   (+ g for the residual: the skip path adds the identity)
    dL/dW_k = dL/da_k^T x_k

So the gradient reaching layer k is a product of depth - k Jacobians J_j = diag(f'(z_j)) BN_j W_j:
with sigmoid every factor carries f' <= 1/4 and at torch's default init |W| ~ 1/sqrt(3), so the
product vanishes geometrically; tanh loses less, ReLU keeps half the units. Batch norm rescales
each layer's pre-activations to unit variance, which keeps f' away from its flat tails and
the Jacobians' scale near one; a residual connection turns each factor into I + J_j, so the
gradient always has an identity path back to the first layer.

``DeepMLP`` records every layer's input x_k (``intermediates``) and dL/dx_k
(``intermediate_grads``); its parameter grads give dL/dW_k per layer. Building blocks are
imported: ``Linear``, ``BatchNorm1d``, ``Sigmoid`` / ``Tanh`` / ``ReLU`` from numpy_impl.layers.
"""
from __future__ import annotations

import numpy as np

from numpy_impl.layers.activations import ReLU, Sigmoid, Tanh
from numpy_impl.layers.batchnorm import BatchNorm1d
from numpy_impl.layers.linear import Linear
from numpy_impl.module import Module, ModuleList

ACTIVATIONS = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU}


class Layer(Module):
    """x -> f(BN(fc(x))) (BN optional), plus x itself when ``residual``."""

    def __init__(self, features: int, activation: str = "tanh", batchnorm: bool = False,
                 residual: bool = False) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.residual = residual
        self.fc = Linear(features, features)
        self.bn = BatchNorm1d(features) if batchnorm else None
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: np.ndarray) -> np.ndarray:
        z = self.fc(x)                                 # a = x W^T + b       (B, F)
        if self.bn is not None:
            z = self.bn(z)                             # z = BN(a)           (B, F)
        h = self.act(z)                                # h = f(z)            (B, F)
        return x + h if self.residual else h

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad = self.act.backward(grad_output)          # dL/dz = g f'(z)
        if self.bn is not None:
            grad = self.bn.backward(grad)              # dL/da through the normalization
        grad_x = self.fc.backward(grad)                # dL/dx = dL/da W; dW, db accumulate
        if self.residual:
            grad_x = grad_x + grad_output              # the skip path: + g
        return grad_x


class DeepMLP(Module):
    """``depth`` Layers of width ``features`` (``layers.0.fc.weight``, ``layers.0.bn.weight``)."""

    def __init__(self, features: int, depth: int = 10, activation: str = "tanh",
                 batchnorm: bool = False, residual: bool = False) -> None:
        super().__init__()
        self.depth = depth
        self.layers = ModuleList([Layer(features, activation, batchnorm, residual)
                                  for _ in range(depth)])
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.intermediates = {}
        for k, layer in enumerate(self.layers):
            self.intermediates[f"layer{k}.input"] = x  # x_k                 (B, F)
            x = layer(x)                               # x_{k+1}
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.intermediate_grads = {}
        grad = grad_output                             # dL/dx_depth
        for k in reversed(range(self.depth)):
            grad = self.layers[k].backward(grad)       # dL/dx_k = J_k^T dL/dx_{k+1}
            self.intermediate_grads[f"layer{k}.input"] = grad
        return grad


def gradient_norms(model: DeepMLP) -> tuple[np.ndarray, np.ndarray]:
    """After a backward pass: ||dL/dx_k|| and ||dL/dW_k|| for k = 0 .. depth-1."""
    inputs = np.array([np.linalg.norm(model.intermediate_grads[f"layer{k}.input"])
                       for k in range(model.depth)])
    weights = np.array([np.linalg.norm(layer.fc.weight.grad) for layer in model.layers])
    return inputs, weights
