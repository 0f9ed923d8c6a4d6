r"""Residual block vs plain block, and a stack of either, forward and backward by hand.

One block, for x of shape (*, F), a Linear(F, F) ``fc`` and tanh:

    h = tanh(x W^T + b)                            (*, F)
    y = x + h        (residual)                    (*, F)
    y = h            (plain)

Backward, given g = dL/dy (the Linear step is ``numpy_impl.layers.linear``'s):

    dL/dh  = g
    dL/da  = g * (1 - h^2)                         a = x W^T + b, through tanh
    dL/dx  = dL/da W  (+ g for the residual block: the skip path adds the identity)
    dL/dW += dL/da^T x,   dL/db += sum over rows of dL/da

A stack of K blocks, x_0 = input, x_{k+1} = block_k(x_k), sends the gradient back as

    dL/dx_k = J_k^T dL/dx_{k+1}                    plain:    J_k = diag(1 - h_k^2) W_k
    dL/dx_k = dL/dx_{k+1} + J_k^T dL/dx_{k+1}      residual: (I + J_k)^T

so the plain stack's input gradient is a product of K Jacobians, each shrinking a vector by
about |W| * mean(1 - h^2) < 1 at torch's default init: it decays geometrically with depth.
The residual stack keeps the identity term in every factor: the gradient reaches the first
block undiminished. ``Stack`` records each block's input (``intermediates``) and the gradient
with respect to it (``intermediate_grads``) to show exactly that.
"""
from __future__ import annotations

import numpy as np

from numpy_impl.layers.activations import Tanh
from numpy_impl.layers.linear import Linear
from numpy_impl.module import Module, ModuleList


class Block(Module):
    """y = x + tanh(fc(x)) if ``residual`` else tanh(fc(x)); fc is Linear(features, features)."""

    def __init__(self, features: int, residual: bool = True) -> None:
        super().__init__()
        self.features = features
        self.residual = residual
        self.fc = Linear(features, features)
        self.act = Tanh()

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = self.act(self.fc(x))                       # (*, F)
        return x + h if self.residual else h           # (*, F)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad_a = self.act.backward(grad_output)        # (*, F) through tanh: g (1 - h^2)
        grad_x = self.fc.backward(grad_a)              # (*, F) through x W^T + b
        if self.residual:
            grad_x = grad_x + grad_output              # the skip path: d(x + h)/dx = I + dh/dx
        return grad_x

    def extra_repr(self) -> str:
        return f"features={self.features}, residual={self.residual}"


class Stack(Module):
    """``depth`` Blocks in sequence (``blocks.0.fc.weight``, ...), all residual or all plain."""

    def __init__(self, features: int, depth: int = 10, residual: bool = True) -> None:
        super().__init__()
        self.features = features
        self.depth = depth
        self.residual = residual
        self.blocks = ModuleList([Block(features, residual) for _ in range(depth)])
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.intermediates = {}
        for k, block in enumerate(self.blocks):
            self.intermediates[f"block{k}.input"] = x  # x_k, (*, F)
            x = block(x)                               # x_{k+1} = block_k(x_k)
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.intermediate_grads = {}
        grad = grad_output                             # dL/dx_K
        for k in reversed(range(self.depth)):
            grad = self.blocks[k].backward(grad)       # dL/dx_k = block_k's Jacobian^T dL/dx_{k+1}
            self.intermediate_grads[f"block{k}.input"] = grad
        return grad

    def extra_repr(self) -> str:
        return f"features={self.features}, depth={self.depth}, residual={self.residual}"
