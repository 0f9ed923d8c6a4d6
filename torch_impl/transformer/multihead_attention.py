r"""Multi-head attention in PyTorch, written out: autograd does the backward.

    [Q | K | V] = in-projection with the packed in_proj_weight (3E, E), in_proj_bias (3E,)
    C_h = softmax(Q_h K_h^T / sqrt(D) + M) V_h      per head, D = E / H
    out = out_proj(concat_h C_h)

M merges ``attn_mask`` ((L, S) or (N*H, L, S)) and ``key_padding_mask`` ((N, S)); a boolean
True is masked. Same constructor, parameter names, initialization and forward arguments as
``torch.nn.MultiheadAttention`` (the witness); ``add_bias_kv``, ``add_zero_attn`` and a
``kdim``/``vdim`` other than ``embed_dim`` are refused, as in the NumPy twin.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from torch_impl.transformer.attention import scaled_dot_product_attention


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """bool True -> -inf (masked), False -> 0; a float mask as is."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, -math.inf)


def merged_mask(attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None,
                batch: int, num_heads: int, length: int, source_length: int,
                dtype: torch.dtype) -> torch.Tensor | None:
    """attn_mask + key_padding_mask as one float mask broadcastable to (N, H, L, S)."""
    attn = additive_mask(attn_mask, dtype)
    if attn is not None and attn.dim() == 3:
        attn = attn.view(batch, num_heads, length, source_length)           # (N, H, L, S)
    padding = additive_mask(key_padding_mask, dtype)
    if padding is not None:
        padding = padding.view(batch, 1, 1, source_length)                  # (N, 1, 1, S)
        attn = padding if attn is None else attn + padding
    return attn


class MultiheadAttention(nn.Module):
    """Same constructor and parameter names as ``torch.nn.MultiheadAttention``."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if add_bias_kv or add_zero_attn:
            raise ValueError("MultiheadAttention (torch twin): add_bias_kv and "
                                      "add_zero_attn are not supported")
        if (kdim is not None and kdim != embed_dim) or (vdim is not None and vdim != embed_dim):
            raise ValueError("MultiheadAttention (torch twin): kdim and vdim must "
                                      "equal embed_dim")
        if embed_dim % num_heads != 0:
            raise AssertionError("embed_dim must be divisible by num_heads")
        factory = dict(device=device, dtype=dtype)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **factory))
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False, *, dropout_mask: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batched = query.dim() == 3
        if not batched:                                                  # (L, E) -> (L, 1, E)
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:                                           # (N, L, E) -> (L, N, E)
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        L, N, E = query.shape
        S = key.shape[0]
        H, D = self.num_heads, self.head_dim
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint.")
        sdpa_causal = is_causal and key_padding_mask is None and not need_weights
        mask = None if sdpa_causal else merged_mask(attn_mask, key_padding_mask, N, H, L, S,
                                                    query.dtype)
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None \
            else (None, None, None)
        q = nn.functional.linear(query, w_q, b_q)                        # (L, N, E)
        k = nn.functional.linear(key, w_k, b_k)                          # (S, N, E)
        v = nn.functional.linear(value, w_v, b_v)                        # (S, N, E)
        qh = q.reshape(L, N, H, D).permute(1, 2, 0, 3)                   # (N, H, L, D)
        kh = k.reshape(S, N, H, D).permute(1, 2, 0, 3)                   # (N, H, S, D)
        vh = v.reshape(S, N, H, D).permute(1, 2, 0, 3)                   # (N, H, S, D)
        if need_weights and mask is not None:
            # torch's weights path is a plain softmax: a query with no visible key is 0/0, NaN,
            # and the NaN reaches every key and value in the backward. A NaN query row does
            # the same through this twin's attention.
            dead = torch.isneginf(mask.expand(N, H, L, S)).all(dim=-1, keepdim=True)
            qh = qh * torch.ones_like(dead, dtype=qh.dtype).masked_fill(dead, math.nan)
        dropout_p = self.dropout if self.training else 0.0
        if dropout_p > 0.0 and dropout_mask is None:
            dropout_mask = torch.rand(N, H, L, S, device=query.device) >= dropout_p
        context, weights = scaled_dot_product_attention(
            qh, kh, vh, mask, dropout_p, sdpa_causal, dropout_mask=dropout_mask)
        returned = None
        if need_weights:
            returned = weights                                           # (N, H, L, S)
            if dropout_p > 0.0:  # torch returns the weights after dropout
                returned = weights * dropout_mask * (0.0 if dropout_p >= 1.0
                                                     else 1.0 / (1.0 - dropout_p))
            if average_attn_weights:
                returned = returned.mean(dim=1)                          # (N, L, S)
        merged = context.permute(2, 0, 1, 3).reshape(L, N, E)            # (L, N, E)
        out = self.out_proj(merged)                                      # (L, N, E)
        if not batched:
            return out.squeeze(1), None if returned is None else returned.squeeze(0)
        if self.batch_first:
            out = out.transpose(0, 1)                                    # (N, L, E)
        return out, returned
