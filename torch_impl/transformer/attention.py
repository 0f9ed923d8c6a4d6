r"""Scaled dot-product attention in PyTorch: the forward written out, autograd does the rest.

    S  = scale * Q K^T + M          M: bool mask (False -> -inf), float mask (added), causal
    P  = softmax(S)                 a row with every key masked gets weights 0, as torch's SDPA
    P~ = P * D / (1 - p)            dropout on the weights, the keep-mask D given
    O  = P~ V

Written from the formula, not by calling ``F.scaled_dot_product_attention`` (that is the
witness). ``scaled_dot_product_attention`` returns (out, weights) where the NumPy twin returns
(out, cache); ``ScaledDotProductAttention`` and ``SelfAttention`` mirror the NumPy classes.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def causal_mask(length: int, source_length: int, device: Any = None) -> torch.Tensor:
    """tril(ones(L, S)): query i attends keys j <= i (top-left aligned)."""
    return torch.ones(length, source_length, dtype=torch.bool, device=device).tril()


def masked_scores(scores: torch.Tensor, attn_mask: torch.Tensor | None,
                  is_causal: bool) -> torch.Tensor:
    """S + M: a bool mask sets its False entries to -inf, a float mask is added."""
    if is_causal:
        if attn_mask is not None:
            raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not "
                               "be set when is_causal=True")
        attn_mask = causal_mask(*scores.shape[-2:], device=scores.device)
    if attn_mask is None:
        return scores
    if attn_mask.dtype == torch.bool:
        return scores.masked_fill(~attn_mask, float("-inf"))          # (..., L, S)
    return scores + attn_mask.to(scores.dtype)                         # (..., L, S)


def safe_softmax(scores: torch.Tensor) -> torch.Tensor:
    """softmax over the last dim; a row of only -inf gets weights 0 instead of NaN."""
    row_max = scores.detach().amax(dim=-1, keepdim=True)               # shift-invariant: no grad
    row_max = row_max.masked_fill(row_max == float("-inf"), 0.0)
    e = torch.exp(scores - row_max)                                    # (..., L, S)
    total = e.sum(dim=-1, keepdim=True)                                # (..., L, 1)
    return e / total.masked_fill(total == 0, 1.0)                      # all masked: 0 / 1


def scaled_dot_product_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                 attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None, *,
                                 dropout_mask: torch.Tensor | None = None,
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(scale Q K^T + M) V; returns (out, weights P before dropout)."""
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = scale * (query @ key.transpose(-2, -1))                   # (..., L, S)
    scores = masked_scores(scores, attn_mask, is_causal)
    weights = safe_softmax(scores)                                     # (..., L, S)
    dropped = weights
    if dropout_p > 0.0:
        if dropout_mask is None:
            dropout_mask = torch.rand_like(weights) >= dropout_p
        keep_scale = 0.0 if dropout_p >= 1.0 else 1.0 / (1.0 - dropout_p)
        dropped = weights * dropout_mask * keep_scale                  # (..., L, S)
    return dropped @ value, weights                                    # (..., L, Ev)


class ScaledDotProductAttention(nn.Module):
    """The function as a parameter-free module: options (and fixed masks) in the constructor,
    tensors in forward; an ``attn_mask`` passed to forward takes precedence."""

    def __init__(self, dropout_p: float = 0.0, is_causal: bool = False,
                 scale: float | None = None, dropout_mask: Any = None,
                 attn_mask: Any = None) -> None:
        super().__init__()
        self.dropout_p = float(dropout_p)
        self.is_causal = is_causal
        self.scale = scale
        self.dropout_mask = None if dropout_mask is None \
            else torch.as_tensor(dropout_mask, dtype=torch.bool)
        self.attn_mask = None if attn_mask is None else torch.as_tensor(attn_mask)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        out, _ = scaled_dot_product_attention(
            query, key, value, self.attn_mask if attn_mask is None else attn_mask,
            self.dropout_p if self.training else 0.0, self.is_causal, self.scale,
            dropout_mask=self.dropout_mask)
        return out


class SelfAttention(nn.Module):
    """One attention head over (batch, seq_len, embed_dim); returns (out, weights)."""

    def __init__(self, embed_dim: int, bias: bool = True, is_causal: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.is_causal = is_causal
        self.dropout = float(dropout)
        self.query = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.key = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.value = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                dropout_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.query(x)                                              # (B, T, C)
        k = self.key(x)                                                # (B, T, C)
        v = self.value(x)                                              # (B, T, C)
        return scaled_dot_product_attention(
            q, k, v, attn_mask, self.dropout if self.training else 0.0, self.is_causal,
            dropout_mask=dropout_mask)                                 # (B, T, C), (B, T, T)
