r"""Embedding (a lookup table) in PyTorch: indexing is the forward, autograd does the rest.

    y = W[idx]                                      idx: any integer shape (*), y: (*, dim)

Autograd's backward of indexing is a scatter-add, so repeated indices accumulate by
themselves. The padding row must get no gradient: the lookup reads it from a detached copy
of W (``torch.where`` picks per row between W and W.detach()), so no gradient flows back.

Same constructor, parameter and initialization (N(0, 1), padding row zero) as
``torch.nn.Embedding``; ``max_norm``, ``scale_grad_by_freq``, ``sparse`` at their defaults only.
"""
from __future__ import annotations

import torch
from torch import nn


class Embedding(nn.Module):
    """Same constructor and parameter name as ``torch.nn.Embedding``."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False) -> None:
        super().__init__()
        for name, value, default in (("max_norm", max_norm, None),
                                     ("scale_grad_by_freq", scale_grad_by_freq, False),
                                     ("sparse", sparse, False)):
            if value != default:
                raise ValueError(
                    f"Embedding supports only {name}={default!r}, got {name}={value!r}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise AssertionError("Padding_idx must be within num_embeddings")
            if padding_idx < 0:
                padding_idx += num_embeddings                   # -1 is the last row
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        if self.padding_idx is not None:
            with torch.no_grad():
                self.weight[self.padding_idx].fill_(0)         # padding embeds to zeros

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise RuntimeError(f"Embedding indices must be integers, got {indices.dtype}")
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.num_embeddings):
            raise IndexError("index out of range in self")     # no wrap-around of negatives
        weight = self.weight
        if self.padding_idx is not None:
            rows = torch.arange(self.num_embeddings, device=weight.device)
            trainable = (rows != self.padding_idx).unsqueeze(1)        # (num_embeddings, 1)
            weight = torch.where(trainable, weight, weight.detach())   # no grad to padding
        return weight[indices]                                  # (*, dim)

    def extra_repr(self) -> str:
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"
