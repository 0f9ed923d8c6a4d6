r"""The transformer block in PyTorch, pre-LN and post-LN: autograd does the backward.

    SA(h) = dropout1(self_attn(h, h, h, causal mask))
    FF(h) = dropout2(linear2(dropout(gelu(linear1(h)))))
    pre-LN:  x1 = x + SA(norm1(x));   y = x1 + FF(norm2(x1))
    post-LN: x1 = norm1(x + SA(x));   y = norm2(x1 + FF(x1))

Built from this library's torch twins (MultiheadAttention) and torch.nn layers, with
``nn.TransformerEncoderLayer``'s module names (its state dict loads unchanged); the witness
is ``nn.TransformerEncoderLayer`` itself. ``dropout_masks`` replays given keep-masks
(``self_attn``, ``dropout``, ``dropout1``, ``dropout2``), as the NumPy twin does.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torch_impl.transformer.multihead_attention import MultiheadAttention


class MaskedDropout(nn.Dropout):
    """nn.Dropout that replays a given keep-mask: x * m / (1 - p) (no keys, as nn.Dropout)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None or not self.training or self.p == 0.0:
            return super().forward(x)
        return x * mask * (0.0 if self.p >= 1.0 else 1.0 / (1.0 - self.p))


class TransformerBlock(nn.Module):
    """One transformer block; pre-LN (``norm_first=True``) or post-LN."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int | None = None,
                 dropout: float = 0.0, activation: str = "gelu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = True, norm_first: bool = True, bias: bool = True,
                 causal: bool = True) -> None:
        super().__init__()
        if activation != "gelu":
            raise ValueError(f"TransformerBlock: activation must be 'gelu', got {activation!r}")
        if not batch_first:
            raise ValueError("TransformerBlock: inputs are (N, T, C); batch_first must be True")
        self.d_model = d_model
        self.nhead = nhead
        self.dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
        self.norm_first = norm_first
        self.causal = causal
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=True)
        self.linear1 = nn.Linear(d_model, self.dim_feedforward, bias=bias)
        self.dropout = MaskedDropout(dropout)
        self.linear2 = nn.Linear(self.dim_feedforward, d_model, bias=bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = MaskedDropout(dropout)
        self.dropout2 = MaskedDropout(dropout)
        self.activation = nn.GELU()
        self.intermediates: dict[str, torch.Tensor] = {}

    def _sa_block(self, h: torch.Tensor, key_padding_mask: torch.Tensor | None,
                  masks: dict[str, Any]) -> torch.Tensor:
        T = h.shape[1]
        attn_mask = torch.ones(T, T, dtype=torch.bool, device=h.device).triu(1) \
            if self.causal else None                                    # True = masked
        a, _ = self.self_attn(h, h, h, key_padding_mask=key_padding_mask, need_weights=False,
                              attn_mask=attn_mask, is_causal=self.causal,
                              dropout_mask=masks.get("self_attn"))
        return self.dropout1(a, masks.get("dropout1"))                  # (N, T, C)

    def _ff_block(self, h: torch.Tensor, masks: dict[str, Any]) -> torch.Tensor:
        hidden = self.dropout(self.activation(self.linear1(h)), masks.get("dropout"))
        return self.dropout2(self.linear2(hidden), masks.get("dropout2"))  # (N, T, C)

    def forward(self, src: torch.Tensor, src_key_padding_mask: torch.Tensor | None = None, *,
                dropout_masks: dict[str, Any] | None = None) -> torch.Tensor:
        masks = dropout_masks or {}
        x = src                                                         # (N, T, C)
        if self.norm_first:
            attn = self._sa_block(self.norm1(x), src_key_padding_mask, masks)
            mid = x + attn
            ffn = self._ff_block(self.norm2(mid), masks)
            out = mid + ffn
        else:
            attn = self._sa_block(x, src_key_padding_mask, masks)
            mid = self.norm1(x + attn)
            ffn = self._ff_block(mid, masks)
            out = self.norm2(mid + ffn)
        for tensor in (attn, mid, ffn):
            if tensor.requires_grad:
                tensor.retain_grad()                                    # keep dL/d(it)
        self.intermediates = {"attn": attn, "mid": mid, "ffn": ffn}
        return out
