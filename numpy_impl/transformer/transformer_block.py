r"""The transformer block, pre-LN and post-LN, forward and backward by hand.

A block is two sub-layers, each wrapped in a residual connection: causal multi-head
self-attention, then a position-wise MLP. With x of shape (N, T, C) (``batch_first``):

    SA(h)  = dropout1(MultiheadAttention(h, h, h, causal mask))     (N, T, C)
    FF(h)  = dropout2(linear2(dropout(gelu(linear1(h)))))             (N, T, C), hidden (N, T, F)

    pre-LN  (norm_first=True, GPT-2):      x1 = x + SA(norm1(x))
                                            y  = x1 + FF(norm2(x1))
    post-LN (norm_first=False, original):  x1 = norm1(x + SA(x))
                                            y  = norm2(x1 + FF(x1))

Backward, given g = dL/dy. A residual y = x + f(x) passes g straight through and adds the
branch's own gradient: dL/dx = g + J_f^T g. Self-attention uses h three times (query, key,
value), so dL/dh is the sum of the three gradients MultiheadAttention returns.

    pre-LN:   dx1 = g + norm2^T FF^T g
              dx  = dx1 + norm1^T SA^T dx1
    post-LN:  dz2 = norm2^T g;           dx1 = dz2 + FF^T dz2
              dz1 = norm1^T dx1;         dx  = dz1 + SA^T dz1

In pre-LN the identity path reaches x untouched through every block; in post-LN each
block's gradient passes through two LayerNorm Jacobians -- the difference gradient_flow
measures at depth.

Names mirror ``torch.nn.TransformerEncoderLayer`` so that its state dict loads unchanged:
``self_attn`` (in_proj_weight, in_proj_bias, out_proj), ``linear1``, ``linear2``, ``norm1``,
``norm2``, and the dropouts ``dropout`` (MLP hidden), ``dropout1``, ``dropout2``; attention
dropout lives inside ``self_attn``. The activation is GELU (torch's ``activation="gelu"``;
no parameters, no keys). Differences from the torch layer: ``dim_feedforward`` defaults to
4 * d_model (GPT) and ``dropout`` to 0; ``causal=True`` (the default) applies the causal mask
itself, so ``TransformerBlock(d_model, nhead)`` is a GPT block; ``batch_first`` is True.

``forward(src, src_key_padding_mask=None, *, dropout_masks=None)``: ``dropout_masks`` maps
``self_attn``, ``dropout``, ``dropout1``, ``dropout2`` to keep-masks to replay (see
``dropout_mask_shapes``); without, each dropout draws its own. ``backward(grad_output)``
returns dL/dsrc. ``intermediates`` / ``intermediate_grads`` hold the attention branch
``attn``, the residual stream between the sub-layers ``mid`` and the MLP branch ``ffn``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from numpy_impl.layers.activations import GELU
from numpy_impl.layers.dropout import Dropout
from numpy_impl.layers.layernorm import LayerNorm
from numpy_impl.layers.linear import Linear
from numpy_impl.module import Module
from numpy_impl.transformer.attention import causal_mask
from numpy_impl.transformer.multihead_attention import MultiheadAttention


class TransformerBlock(Module):
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
        self.linear1 = Linear(d_model, self.dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(self.dim_feedforward, d_model, bias=bias)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = GELU()
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def dropout_mask_shapes(self, batch: int, length: int) -> dict[str, tuple[int, ...]]:
        """The keep-mask each dropout applies to an input of shape (batch, length, d_model)."""
        return {"self_attn": (batch, self.nhead, length, length),
                "dropout1": (batch, length, self.d_model),
                "dropout": (batch, length, self.dim_feedforward),
                "dropout2": (batch, length, self.d_model)}

    # --- the two sub-layers ------------------------------------------------------------------
    def _sa_block(self, h: np.ndarray, key_padding_mask: np.ndarray | None,
                  masks: dict[str, Any]) -> np.ndarray:
        """dropout1(self-attention of h), causal: (N, T, C) -> (N, T, C)."""
        T = h.shape[1]
        attn_mask = ~causal_mask(T, T) if self.causal else None        # True = masked, (T, T)
        a, _ = self.self_attn(h, h, h, key_padding_mask=key_padding_mask, need_weights=False,
                              attn_mask=attn_mask, is_causal=self.causal,
                              dropout_mask=masks.get("self_attn"))
        return self.dropout1(a, masks.get("dropout1"))                 # (N, T, C)

    def _sa_backward(self, grad: np.ndarray) -> np.ndarray:
        dquery, dkey, dvalue = self.self_attn.backward(self.dropout1.backward(grad))
        return dquery + dkey + dvalue                                  # h fed all three

    def _ff_block(self, h: np.ndarray, masks: dict[str, Any]) -> np.ndarray:
        """dropout2(linear2(dropout(gelu(linear1(h))))): (N, T, C) -> (N, T, C)."""
        hidden = self.activation(self.linear1(h))                      # (N, T, F)
        hidden = self.dropout(hidden, masks.get("dropout"))            # (N, T, F)
        return self.dropout2(self.linear2(hidden), masks.get("dropout2"))  # (N, T, C)

    def _ff_backward(self, grad: np.ndarray) -> np.ndarray:
        dhidden = self.linear2.backward(self.dropout2.backward(grad))   # (N, T, F)
        dhidden = self.activation.backward(self.dropout.backward(dhidden))
        return self.linear1.backward(dhidden)                          # (N, T, C)

    # --- the block -----------------------------------------------------------------------------
    def forward(self, src: np.ndarray, src_key_padding_mask: np.ndarray | None = None, *,
                dropout_masks: dict[str, Any] | None = None) -> np.ndarray:
        masks = dropout_masks or {}
        x = src                                                        # (N, T, C)
        if self.norm_first:
            attn = self._sa_block(self.norm1(x), src_key_padding_mask, masks)
            mid = x + attn                                             # x1 = x + SA(norm1(x))
            ffn = self._ff_block(self.norm2(mid), masks)
            out = mid + ffn                                            # y = x1 + FF(norm2(x1))
        else:
            attn = self._sa_block(x, src_key_padding_mask, masks)
            mid = self.norm1(x + attn)                                 # x1 = norm1(x + SA(x))
            ffn = self._ff_block(mid, masks)
            out = self.norm2(mid + ffn)                                # y = norm2(x1 + FF(x1))
        self.intermediates = {"attn": attn, "mid": mid, "ffn": ffn}
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        g = grad_output                                                # (N, T, C)
        if self.norm_first:
            # y = x1 + FF(norm2(x1)): the residual passes g, the branch adds its share
            dffn = g
            dmid = g + self.norm2.backward(self._ff_backward(dffn))
            # x1 = x + SA(norm1(x))
            dattn = dmid
            dx = dmid + self.norm1.backward(self._sa_backward(dattn))
        else:
            # y = norm2(x1 + FF(x1)): through norm2 first, then the residual fork at x1
            dffn = self.norm2.backward(g)
            dmid = dffn + self._ff_backward(dffn)
            # x1 = norm1(x + SA(x))
            dattn = self.norm1.backward(dmid)
            dx = dattn + self._sa_backward(dattn)
        self.intermediate_grads = {"attn": dattn, "mid": dmid, "ffn": dffn}
        return dx

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, nhead={self.nhead}, " \
               f"dim_feedforward={self.dim_feedforward}, norm_first={self.norm_first}, " \
               f"causal={self.causal}"
