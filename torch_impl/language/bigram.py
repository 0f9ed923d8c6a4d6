r"""The bigram character model in PyTorch: counting with tensor ops, and the neural bigram
(one-hot times W, softmax, NLL) with autograd computing dL/dW.

    P_ij = (N_ij + k) / Σ_j' (N_ij' + k)
    L    = -(1/N) Σ_n log softmax(onehot(x_n) W)_{y_n} + l2 mean(W²) + (k/N) Σ_ij -log softmax(W)_ij

The smoothing penalty is k fake observations of every pair; its minimizer is the smoothed count
model (see the NumPy twin for the gradient that autograd derives here).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BigramCounts:
    """The counting model: ``fit`` counts every pair, ``probs`` are the smoothed rows."""

    def __init__(self, vocab_size: int, smoothing: float = 1.0) -> None:
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing}")
        self.vocab_size, self.smoothing = vocab_size, smoothing
        self.counts = torch.zeros((vocab_size, vocab_size), dtype=torch.int64)  # (V, V)

    def fit(self, xs: torch.Tensor, ys: torch.Tensor,
            dtype: torch.dtype = torch.float64) -> BigramCounts:
        V = self.vocab_size
        # N[x_n, y_n] += 1 for every n at once: index_put_ with accumulate adds repeated pairs
        self.counts = torch.zeros((V, V), dtype=torch.int64).index_put_(
            (xs, ys), torch.ones_like(xs), accumulate=True)  # (V, V)
        smoothed = (self.counts + self.smoothing).to(dtype)  # N + k
        self.probs = smoothed / smoothed.sum(dim=1, keepdim=True)  # (V, V)
        return self

    def nll(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return -self.probs[xs, ys].log().mean()


class NeuralBigram(nn.Module):
    """logits = onehot(x) W, cross-entropy against y, plus the l2 and smoothing penalties."""

    def __init__(self, vocab_size: int, l2: float = 0.0, smoothing: float = 0.0) -> None:
        super().__init__()
        self.vocab_size, self.l2, self.smoothing = vocab_size, l2, smoothing
        self.W = nn.Parameter(torch.randn((vocab_size, vocab_size)))  # as the lecture

    def forward(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        xenc = F.one_hot(xs, num_classes=self.vocab_size).to(self.W.dtype)  # (N, V)
        logits = xenc @ self.W  # (N, V) log-counts
        counts = logits.exp()  # (N, V) the lecture's softmax, spelled out
        probs = counts / counts.sum(dim=1, keepdim=True)  # (N, V)
        nll = -probs[torch.arange(len(xs)), ys].log().mean()
        smooth = -(self.smoothing / len(xs)) * self.W.log_softmax(dim=1).sum()
        return nll + self.l2 * (self.W ** 2).mean() + smooth

    def probs(self) -> torch.Tensor:
        return self.W.softmax(dim=1)
