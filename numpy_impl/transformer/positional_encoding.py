r"""Positional encodings, forward and backward by hand: learned and sinusoidal.

Attention is permutation-equivariant: without a position signal, "dog bites man" and
"man bites dog" look the same. Both encodings add a vector per position to the token
vectors x of shape (N, T, C) (batch first):

    y[n, t] = x[n, t] + P[t]                                         (N, T, C)

Learned (GPT-2's ``wpe``): P = W[0..T-1], the rows of an Embedding(max_len, C) looked up at
positions 0..T-1 of every sequence. Backward, given g = dL/dy:

    dL/dx    = g                                  the addition passes g through
    dL/dW[t] = sum_n g[n, t]     for t < T        every sequence reads row t once, so the
    dL/dW[t] = 0                 for t >= T       rows accumulate over the batch (scatter-add)

Sinusoidal ("Attention is all you need"), fixed, no parameters:

    P[t, 2i]   = sin(t / 10000^{2i / C})
    P[t, 2i+1] = cos(t / 10000^{2i / C})          (an odd C has one sine more than cosines)

so dL/dx = g and nothing else gets a gradient. Each pair (2i, 2i+1) is a rotation by an
angle proportional to t: P[t + k] is a fixed linear map of P[t], and the dot product
P[t] . P[s] depends only on t - s (the plot shows the resulting band structure).

The table is computed and kept in float64 as the non-persistent buffer ``pe`` (max_len, C)
until ``.float()`` / ``.double()`` / ``.to()`` converts it (forward adds it in x's dtype):
so a module converted to float64 holds the exact table, not a float32 rounding of it. It is
a function of the shape, not state, so neither twin saves it; each computes its own, and
the comparison checks they agree.
"""
from __future__ import annotations

import numpy as np

from numpy_impl.layers.embedding import Embedding
from numpy_impl.module import Module


def sinusoidal_table(max_len: int, d_model: int) -> np.ndarray:
    """P[t, 2i] = sin(t / 10000^{2i/C}), P[t, 2i+1] = cos(same), in float64: (max_len, C)."""
    positions = np.arange(max_len, dtype=np.float64)[:, None]          # (max_len, 1)
    two_i = np.arange(0, d_model, 2, dtype=np.float64)                 # (ceil(C/2),)
    angles = positions / 10000.0 ** (two_i / d_model)                  # (max_len, ceil(C/2))
    table = np.zeros((max_len, d_model))
    table[:, 0::2] = np.sin(angles)                                    # even columns
    table[:, 1::2] = np.cos(angles[:, :d_model // 2])                  # odd columns
    return table


def check_length(length: int, max_len: int) -> None:
    if length > max_len:
        raise ValueError(f"sequence length {length} exceeds max_len {max_len}")


class LearnedPositionalEmbedding(Module):
    """y = x + W[0..T-1]: an ``Embedding(max_len, d_model)`` over positions (GPT's wpe)."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.d_model = d_model
        self.embedding = Embedding(max_len, d_model)

    def forward(self, x: np.ndarray) -> np.ndarray:
        T = x.shape[-2]
        check_length(T, self.max_len)
        return x + self.embedding(np.arange(T))                        # (N, T, C) + (T, C)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        # every sequence reads row t: sum the batch first (broadcasting's backward), then
        # the embedding's scatter-add puts row t's sum_n g[n, t] into dL/dW[t]
        T, C = grad_output.shape[-2:]
        self.embedding.backward(grad_output.reshape(-1, T, C).sum(axis=0))   # (T, C)
        return grad_output                        # y = x + P: dL/dx = g

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"


class SinusoidalPositionalEncoding(Module):
    """y = x + P[0..T-1] with the fixed sinusoidal table; no parameters."""

    def __init__(self, d_model: int, max_len: int = 5000) -> None:
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        T = x.shape[-2]
        check_length(T, self.max_len)
        return x + self.pe[:T].astype(x.dtype, copy=False)              # (N, T, C)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output                        # P is a constant: dL/dx = g

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"
