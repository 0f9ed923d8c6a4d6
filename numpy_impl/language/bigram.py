r"""The bigram character model, twice: by counting, and as a one-layer neural network.

Data: pairs (x_n, y_n) of consecutive characters of ".word." (V symbols, '.' the boundary).

Counting. N_ij = #{n : x_n = i, y_n = j}; with smoothing k (k fake observations of every
pair, so no probability is zero):

    P_ij = (N_ij + k) / Σ_j' (N_ij' + k)          NLL = -(1/N) Σ_n log P_{x_n y_n}

Neural. A (V, V) weight matrix W; one-hot rows X = onehot(x) (N, V):

    logits = X W            (N, V)   row n is row x_n of W: one-hot times W is a lookup
    p      = softmax(logits)          ("counts" e^logits, normalized per row)
    L      = -(1/N) Σ_n log p_{n, y_n}  +  l2 mean(W²)  +  (k/N) Σ_ij -log softmax(W)_ij

The last term is smoothing written as a regularizer: k fake observations of every pair (i, j)
add -k log P_ij to the summed NLL. Its minimum over W is exactly the smoothed count model,
softmax(W)_i = (N_i + k) / Σ_j (N_ij + k): at that W the gradient below vanishes. ``l2``
(the lecture's 0.01 mean(W²)) also pulls every row toward uniform (W = 0), but only roughly.

Backward, given g = dL/dL:

    dL/dlogits = g (softmax(logits) - onehot(y)) / N        (cross-entropy backward)
    dL/dW      = X^T dL/dlogits                             (one-hot^T: add the rows of each x)
               + g l2 2 W / V²                              (mean(W²))
               + g (k/N) (V softmax(W) - 1)                 (Σ_j -log p_ij, for each row i)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from numpy_impl import random as nprandom
from numpy_impl.layers.activations import log_softmax, log_softmax_backward, softmax
from numpy_impl.layers.losses import CrossEntropyLoss
from numpy_impl.module import Module, Parameter


class BigramCounts:
    """The counting model: ``fit`` counts every pair, ``probs`` are the smoothed rows."""

    def __init__(self, vocab_size: int, smoothing: float = 1.0) -> None:
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing}")
        self.vocab_size, self.smoothing = vocab_size, smoothing
        self.counts = np.zeros((vocab_size, vocab_size), dtype=np.int64)  # (V, V)

    def fit(self, xs: np.ndarray, ys: np.ndarray, dtype: Any = np.float64) -> BigramCounts:
        V = self.vocab_size
        # N_ij: one bincount over the flat pair codes i V + j, no loop over pairs
        self.counts = np.bincount(xs * V + ys, minlength=V * V).reshape(V, V)  # (V, V)
        smoothed = (self.counts + self.smoothing).astype(dtype)  # N + k
        self.probs = smoothed / smoothed.sum(axis=1, keepdims=True)  # (V, V) rows sum to 1
        return self

    def nll(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """-(1/N) Σ_n log P_{x_n y_n}: the average negative log-likelihood of the pairs."""
        return -np.mean(np.log(self.probs[xs, ys]))


class NeuralBigram(Module):
    """logits = onehot(x) W, cross-entropy against y, plus the l2 and smoothing penalties."""

    def __init__(self, vocab_size: int, l2: float = 0.0, smoothing: float = 0.0) -> None:
        super().__init__()
        self.vocab_size, self.l2, self.smoothing = vocab_size, l2, smoothing
        shape = (vocab_size, vocab_size)  # W ~ N(0, 1), as the lecture's torch.randn
        self.W = Parameter(nprandom.generator().standard_normal(shape)
                           .astype(nprandom.default_dtype()))
        self.cross_entropy = CrossEntropyLoss()

    def forward(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        W = self.W.data
        V, n = self.vocab_size, len(xs)
        self.xenc = np.eye(V, dtype=W.dtype)[xs]  # (N, V) one-hot rows
        logits = self.xenc @ W  # (N, V)
        nll = self.cross_entropy(logits, ys)  # -(1/N) Σ log softmax(logits)_{n, y_n}
        self.log_pW = log_softmax(W, dim=1)  # (V, V) log softmax(W), for the smoothing term
        self.n = n
        smooth = -(self.smoothing / n) * self.log_pW.sum()
        return nll + self.l2 * np.mean(W * W) + smooth

    def backward(self, grad_output: np.ndarray) -> None:
        g = grad_output
        W = self.W.data
        # cross-entropy: dL/dlogits = g (softmax - onehot(y)) / N
        dlogits = self.cross_entropy.backward(g)  # (N, V)
        # logits = X W: dL/dW = X^T dL/dlogits, summing the rows of each first character
        dW = self.xenc.T @ dlogits  # (V, V)
        # l2 mean(W^2): d/dW = 2 W / V^2
        dW += g * (2.0 * self.l2 / W.size) * W
        # smoothing -(k/N) Σ log softmax(W): log-softmax backward of an upstream -(k/N) g
        upstream = np.full_like(W, -(self.smoothing / self.n)) * g
        dW += log_softmax_backward(upstream, self.log_pW, dim=1)
        self.W.grad += dW
        return None  # xs and ys are integers: no gradient

    def probs(self) -> np.ndarray:
        """P(next = j | current = i) = softmax(W)_ij: the model's (V, V) bigram table."""
        return softmax(self.W.data, dim=1)
