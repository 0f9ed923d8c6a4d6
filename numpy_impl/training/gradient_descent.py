"""Batch gradient descent with hand-derived gradients: least squares and logistic regression.

Data ``X`` ``(N, d)``, targets ``y`` ``(N,)``, weights ``w`` ``(d,)``, residual/logit ``z = X w``.

Least squares::

    L(w) = 1/(2N) ||X w - y||^2
    dL/dw = 1/N X^T (X w - y)                      (chain rule: dL/dz = (z - y)/N, dz/dw = X)

    The minimizer solves the normal equations X^T X w = X^T y (``np.linalg.lstsq``).

Logistic regression (labels y in {0, 1}, p = sigmoid(z))::

    L(w) = 1/N sum_n [softplus(z_n) - y_n z_n]      (= binary cross-entropy of p against y)
         = 1/N sum_n [(1 - y_n) softplus(z_n) + y_n softplus(-z_n)]
    dL/dw = 1/N X^T (sigmoid(X w) - y)             (dL/dz = (p - y)/N: softplus' = sigmoid)

    The second form (softplus(z) - z = softplus(-z)) is the one computed: the first subtracts
    y z ~ 12 from softplus(z) ~ 12 + 4e-6 and leaves a loss of 4e-6 with the rounding of 12,
    a 10 % error in float32. Likewise dL/dz = (1 - y) sigmoid(z) - y sigmoid(-z), which is
    p - y without its cancellation: at z = 20 and y = 1, p - y is -2e-9 in exact arithmetic
    but 0 (or one ulp of 1) in float32.

    No closed form: the minimizer is where X^T (sigmoid(X w) - y) = 0 (Newton's method finds
    it to machine precision; gradient descent approaches it linearly).

Batch gradient descent: ``w_{k+1} = w_k - lr * dL/dw(w_k)``, every step on the whole data set.
The path converges when ``lr < 2 / lambda_max`` of the Hessian (``X^T X / N`` for least squares,
at most ``X^T X / (4N)`` for logistic regression), linearly at rate ``1 - lr * lambda_min``.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from numpy_impl.layers.activations import softplus

LossAndGrad = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, np.ndarray]]


def least_squares(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """(L, dL/dw) for L = ||X w - y||^2 / (2N)."""
    n = X.shape[0]
    r = X @ w - y                                        # (N,) residual, = z - y
    loss = (r @ r) / (2 * n)
    grad_z = r / n                                       # dL/dz
    return float(loss), X.T @ grad_z                     # dL/dw = X^T dL/dz   (d,)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z), without overflow for large |z| (e^-|z| never overflows)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def logistic(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """(L, dL/dw) for the mean binary cross-entropy of sigmoid(X w) against y."""
    n = X.shape[0]
    z = X @ w                                            # (N,) logits
    loss = np.mean((1 - y) * softplus(z) + y * softplus(-z))  # softplus(z) - y z, no cancellation
    grad_z = ((1 - y) * sigmoid(z) - y * sigmoid(-z)) / n  # dL/dz = (p - y) / N
    return float(loss), X.T @ grad_z                     # dL/dw   (d,)


def gradient_descent(loss_and_grad: LossAndGrad, w0: np.ndarray, X: np.ndarray, y: np.ndarray,
                     lr: float, steps: int) -> dict[str, np.ndarray]:
    """Run ``steps`` updates from ``w0``; the path of weights, losses and gradients.

    Returns ``w`` ``(steps + 1, d)``, ``loss`` ``(steps + 1,)`` and ``grad`` ``(steps + 1, d)``,
    row k at the k-th iterate (row 0: the start).
    """
    w = np.array(w0, copy=True)
    path, losses, grads = [], [], []
    for _ in range(steps + 1):
        loss, grad = loss_and_grad(w, X, y)
        path.append(w.copy())
        losses.append(loss)
        grads.append(grad)
        w = w - lr * grad                                # w_{k+1} = w_k - lr dL/dw
    return {"w": np.array(path), "loss": np.array(losses, dtype=w.dtype),
            "grad": np.array(grads)}
