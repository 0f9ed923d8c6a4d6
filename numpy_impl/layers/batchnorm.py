r"""Batch normalization (BatchNorm1d), forward and backward by hand.

Input x of shape (N, C) or (N, C, L). Each channel c is standardized over the batch (and
length) axes -- the M = N * L values that share it -- then scaled and shifted:

    training:  mu_c = mean(x[:, c]),  var_c = mean((x[:, c] - mu_c)^2)     biased, over M values
    eval:      mu_c = running_mean_c, var_c = running_var_c                 constants
    xhat = (x - mu) / sqrt(var + eps)
    y    = gamma_c * xhat + beta_c

In training the running statistics move towards the batch's, with momentum m
(m = None: a cumulative average, m = 1 / num_batches_tracked):

    running_mean <- (1 - m) running_mean + m mu
    running_var  <- (1 - m) running_var  + m var * M / (M - 1)          unbiased

Backward, given g = dL/dy (sums S over the batch and length axes):

    dL/dgamma = S(g * xhat),   dL/dbeta = S(g),   dxhat = g * gamma
    training:  dL/dx = r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    eval:      dL/dx = r * dxhat                       mu and var do not depend on x

The training formula is LayerNorm's standardization backward, taken over the batch axes
instead of the feature axes: ``standardize`` (batch statistics), ``normalize`` (running ones)
and ``standardize_backward`` are imported from ``numpy_impl.layers.layernorm``.

With one value per channel (M = 1) x - mu = 0 and the unbiased variance divides by zero, so
training on such a batch raises ValueError, as torch does. With ``track_running_stats=False``
the buffers are None (absent from ``state_dict``) and batch statistics are used in eval too.
"""
from __future__ import annotations

import numpy as np

from numpy_impl import random
from numpy_impl.layers.activations import sum_of_products
from numpy_impl.layers.layernorm import normalize, standardize, standardize_backward
from numpy_impl.module import Module, Parameter


def check_batch_size(shape: tuple[int, ...]) -> None:
    """torch's ValueError when a channel has a single value to compute statistics from."""
    values_per_channel = shape[0] * int(np.prod(shape[2:]))
    if values_per_channel == 1:
        raise ValueError("Expected more than 1 value per channel when training, "
                         f"got input size {tuple(shape)}")


class BatchNorm1d(Module):
    """``torch.nn.BatchNorm1d``: per-channel normalization with batch or running statistics."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = float(eps)  # Python floats: they must not promote float32 arrays
        self.momentum = None if momentum is None else float(momentum)
        self.affine = affine
        self.track_running_stats = track_running_stats
        dtype = random.default_dtype()
        self.weight = Parameter(np.ones(num_features, dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {x.ndim}D input)")
        axes = (0,) if x.ndim == 2 else (0, 2)                     # all but the channel axis
        per_channel = (1, -1) + (1,) * (x.ndim - 2)                # (C,) -> (1, C) or (1, C, 1)
        # torch's rule: batch statistics in training, and always when there are no running ones
        batch_stats = self.training or self.running_mean is None
        if batch_stats:
            check_batch_size(x.shape)
            xhat, rstd, mean, var = standardize(x, axes, self.eps)  # mean, var: (1, C[, 1])
            if self.training and self.track_running_stats:
                self._update_running_stats(mean.reshape(-1), var.reshape(-1), x.size // x.shape[1])
        else:
            mean = self.running_mean.reshape(per_channel)
            var = self.running_var.reshape(per_channel)
            xhat, rstd = normalize(x, mean, var, self.eps)         # x's shape
        y = xhat
        if self.affine:
            y = xhat * self.weight.data.reshape(per_channel)       # a new array: xhat is cached
            y += self.bias.data.reshape(per_channel)
        self._cache = (xhat, rstd, axes, per_channel, batch_stats)
        return y

    def _update_running_stats(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        """Exponential (or, momentum=None, cumulative) average; the variance made unbiased.
        In place, as torch updates its buffers."""
        self.num_batches_tracked += 1
        if self.momentum is None:
            factor = 1.0 / float(self.num_batches_tracked)     # mean of every batch so far
        else:
            factor = self.momentum
        unbiased = var * (count / (count - 1))                     # (C,) Bessel's correction
        self.running_mean[...] = (1.0 - factor) * self.running_mean + factor * mean
        self.running_var[...] = (1.0 - factor) * self.running_var + factor * unbiased

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        xhat, rstd, axes, per_channel, batch_stats = self._cache
        dxhat = grad_output
        if self.affine:
            # y = gamma xhat: S(g * xhat), summed as multiplied (no full-size product)
            self.weight.grad += sum_of_products(grad_output, xhat, axes).reshape(-1)  # (C,)
            self.bias.grad += grad_output.sum(axis=axes)             # y = ... + beta:  (C,)
            dxhat = grad_output * self.weight.data.reshape(per_channel)  # through gamma xhat
        if batch_stats:
            return standardize_backward(dxhat, xhat, rstd, axes)   # through mu, var into x
        return dxhat * rstd                                        # running stats: constants

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")
