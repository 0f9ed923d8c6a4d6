"""Batch gradient descent in torch: the loss written forward, autograd supplies dL/dw.

Least squares ``L(w) = ||X w - y||^2 / (2N)`` and logistic regression
``L(w) = mean BCE(sigmoid(X w), y)``, written as ``(1 - y) softplus(z) + y softplus(-z)`` like the
NumPy twin (``F.binary_cross_entropy_with_logits`` in float32 was off by up to 3.5e-3 of a
loss of 4e-6 at logits of 20-30: it forms log(1 + e^-z) next to z); each step
``w <- w - lr * w.grad`` under ``torch.no_grad()``, then the gradient is cleared.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def least_squares(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (X @ w - y).square().sum() / (2 * X.shape[0])


def logistic(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = X @ w                                            # (N,) logits
    return ((1 - y) * softplus(z) + y * softplus(-z)).mean()


def softplus(z: torch.Tensor) -> torch.Tensor:
    """log(1 + e^z) as logaddexp(0, z): accurate everywhere, and its gradient is sigmoid(z).
    (``F.softplus`` returns z itself above z = 20, 2e-9 short: visible in float64.)"""
    return torch.logaddexp(torch.zeros_like(z), z)


def gradient_descent(loss_fn: Callable[..., torch.Tensor], w0: torch.Tensor, X: torch.Tensor,
                     y: torch.Tensor, lr: float, steps: int) -> dict[str, np.ndarray]:
    """The path of weights, losses and autograd gradients, row k at the k-th iterate."""
    w = w0.detach().clone().requires_grad_(True)
    path, losses, grads = [], [], []
    for _ in range(steps + 1):
        loss = loss_fn(w, X, y)
        loss.backward()
        path.append(w.detach().clone())
        losses.append(loss.detach())
        grads.append(w.grad.clone())
        with torch.no_grad():
            w -= lr * w.grad
        w.grad = None
    return {"w": torch.stack(path).numpy(), "loss": torch.stack(losses).numpy(),
            "grad": torch.stack(grads).numpy()}
