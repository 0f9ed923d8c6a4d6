r"""Batch normalization (BatchNorm1d) in PyTorch: forward written out, autograd does the rest.

    training:  mu, var = batch mean and biased variance per channel (over N, or N and L)
    eval:      mu, var = running_mean, running_var
    xhat = (x - mu) / sqrt(var + eps),   y = gamma * xhat + beta

    running_mean <- (1 - m) running_mean + m mu                   (no gradient flows here)
    running_var  <- (1 - m) running_var  + m var * M / (M - 1)    m = momentum, or 1/batches

Same constructor, parameters, buffers and initialization as ``torch.nn.BatchNorm1d``.
"""
from __future__ import annotations

import torch
from torch import nn


class BatchNorm1d(nn.Module):
    """Same constructor, parameter and buffer names as ``torch.nn.BatchNorm1d``."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.empty(num_features))
            self.bias = nn.Parameter(torch.empty(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {x.dim()}D input)")
        dims = (0,) if x.dim() == 2 else (0, 2)                    # all but the channel dim
        per_channel = (1, -1) + (1,) * (x.dim() - 2)               # (C,) -> (1, C) or (1, C, 1)
        if self.training or self.running_mean is None:
            count = x.numel() // x.shape[1]                        # values per channel
            if count == 1:
                raise ValueError("Expected more than 1 value per channel when training, "
                                 f"got input size {x.size()}")
            mean = x.mean(dim=dims, keepdim=True)
            centered = x - mean
            var = (centered * centered).mean(dim=dims, keepdim=True)   # biased: normalizes
            if self.training and self.track_running_stats:
                self._update_running_stats(mean.reshape(-1), var.reshape(-1), count)
        else:
            mean = self.running_mean.reshape(per_channel)
            var = self.running_var.reshape(per_channel)
        xhat = (x - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            return xhat * self.weight.reshape(per_channel) + self.bias.reshape(per_channel)
        return xhat

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        self.num_batches_tracked += 1
        factor = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
        unbiased = var * (count / (count - 1))                     # Bessel's correction
        self.running_mean.mul_(1.0 - factor).add_(factor * mean)
        self.running_var.mul_(1.0 - factor).add_(factor * unbiased)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")
