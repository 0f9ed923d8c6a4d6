r"""Positional encodings in PyTorch: learned (an nn.Embedding over positions) and sinusoidal.

    learned:     y[n, t] = x[n, t] + W[t]                  W: (max_len, C), a parameter
    sinusoidal:  y[n, t] = x[n, t] + P[t],   P[t, 2i] = sin(t / 10000^{2i/C}),
                                             P[t, 2i+1] = cos(t / 10000^{2i/C})

The sinusoidal table is computed and kept in float64 as the non-persistent buffer ``pe``
until ``.to()`` converts it, as in the NumPy twin.
"""
from __future__ import annotations

import torch
from torch import nn


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """(max_len, C) in float64."""
    positions = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)     # (max_len, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)                # (ceil(C/2),)
    angles = positions / 10000.0 ** (two_i / d_model)                       # (max_len, C/2)
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, :d_model // 2])
    return table


class LearnedPositionalEmbedding(nn.Module):
    """y = x + W[0..T-1]: the position rows added to every sequence."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.d_model = d_model
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        if T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len {self.max_len}")
        return x + self.embedding.weight[:T]                                # (N, T, C)


class SinusoidalPositionalEncoding(nn.Module):
    """y = x + P[0..T-1] with the fixed sinusoidal table."""

    def __init__(self, d_model: int, max_len: int = 5000) -> None:
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[-2]
        if T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len {self.max_len}")
        return x + self.pe[:T].to(x.dtype)                                  # (N, T, C)
