r"""Scaled dot-product attention, forward and backward by hand.

Queries (..., L, E) look up keys (..., S, E) and mix the values (..., S, Ev) with the weights
-- torch.nn.functional.scaled_dot_product_attention:

    S   = scale * Q K^T + M                         (..., L, S)  scale = 1/sqrt(E) by default
    P   = softmax(S)  along the last dim (keys)     (..., L, S)  the attention weights
    P~  = P * D / (1 - p)                           dropout on the weights (D: keep-mask)
    O   = P~ V                                      (..., L, Ev)

The mask M says which keys a query may see. A boolean ``attn_mask`` marks the positions that
take part (True = attend; False becomes -inf); a float ``attn_mask`` is added to the scores
as it is; ``is_causal=True`` is the boolean mask tril(ones(L, S)) -- query i sees keys
0..i, aligned at the top left as torch aligns it. Masks broadcast over the leading dims
(batch, heads). Masked entries get weight exactly 0: e^{-inf} = 0.

Backward, given G = dL/dO (and optionally dL/dP from whoever also used the weights):

    dL/dV  = P~^T G                                 (..., S, Ev)
    dL/dP~ = G V^T                                  (..., L, S)
    dL/dP  = dL/dP~ * D / (1 - p)                   through the dropout
    dL/dS  = P * (dL/dP - sum_j dL/dP_j P_j)        through the softmax, per row
    dL/dM  = dL/dS                                  (a float mask is added to S)
    dL/dQ  = scale * dL/dS K                        (..., L, E)
    dL/dK  = scale * dL/dS^T Q                      (..., S, E)

Numerics:

- the softmax subtracts the row max first, so scores of +-1e4 cannot overflow; the max gets
  no gradient because softmax is shift-invariant;
- a row whose keys are ALL masked (every entry False, or -inf) has no softmax (0/0). On torch
  2.13.0 ``F.scaled_dot_product_attention`` returns zeros there -- output row 0, its weights 0,
  and zero gradient to that query, to the keys and values through it and to its mask row --
  in float64 and float32, with and without grad (tests/transformer/test_attention.py pins
  it). This twin does the same: a row whose max is -inf is given weights 0, not NaN. (The
  plain softmax of nn.MultiheadAttention's weights path gives NaN instead; see there.)

``scaled_dot_product_attention(...) -> (out, cache)`` and
``scaled_dot_product_attention_backward(grad_out, cache) -> (dquery, dkey, dvalue)`` are the
public functional pair (torch's argument names); ``cache.weights`` holds P for inspection.
``ScaledDotProductAttention`` is the same function as a Module, and ``SelfAttention`` is the
single-head self-attention layer: query, key and value projections of one sequence
(batch, seq_len, embed_dim), returning the output and the attention weights.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from numpy_impl import random
from numpy_impl.layers.linear import Linear
from numpy_impl.module import Module


class AttentionCache(NamedTuple):
    """What the backward needs, and the weights P for whoever wants to look at them."""

    query: np.ndarray          # (..., L, E)
    key: np.ndarray            # (..., S, E)
    value: np.ndarray          # (..., S, Ev)
    weights: np.ndarray        # (..., L, S)  P, before dropout
    dropped: np.ndarray        # (..., L, S)  P~ = P * D / (1 - p), what multiplied V
    keep: np.ndarray | None    # D, or None without dropout
    keep_scale: float          # 1 / (1 - p), 0 for p = 1
    scale: float


# --- the mask ------------------------------------------------------------------------------------
def causal_mask(length: int, source_length: int) -> np.ndarray:
    """tril(ones(L, S)): query i attends keys j <= i (top-left aligned, as torch)."""
    return np.tril(np.ones((length, source_length), dtype=bool))


def masked_scores(scores: np.ndarray, attn_mask: np.ndarray | None,
                  is_causal: bool) -> np.ndarray:
    """S + M: a bool mask sets its False entries to -inf, a float mask is added."""
    if is_causal:
        if attn_mask is not None:  # torch's own error, same words
            raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not "
                               "be set when is_causal=True")
        attn_mask = causal_mask(*scores.shape[-2:])
    if attn_mask is None:
        return scores
    attn_mask = np.asarray(attn_mask)
    if attn_mask.dtype == bool:
        return np.where(attn_mask, scores, -np.inf)                   # (..., L, S)
    return scores + attn_mask.astype(scores.dtype, copy=False)       # (..., L, S)


def safe_softmax(scores: np.ndarray) -> np.ndarray:
    """softmax over the last dim; a row of only -inf gets weights 0 (torch's SDPA), not NaN."""
    row_max = scores.max(axis=-1, keepdims=True)                      # (..., L, 1)
    row_max = np.where(np.isneginf(row_max), 0.0, row_max)            # all masked: any shift
    e = np.exp(scores - row_max)                                      # (..., L, S) <= 1
    total = e.sum(axis=-1, keepdims=True)                             # (..., L, 1)
    # subtle: an all-masked row sums to 0; divide it by 1 so its weights stay 0
    return e / np.where(total == 0, 1.0, total).astype(e.dtype, copy=False)


def sum_to_shape(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Undo broadcasting: sum ``grad`` over the dims that were broadcast up to its shape."""
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra > 0 else grad
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


# --- the functional pair ---------------------------------------------------------------------
def scaled_dot_product_attention(query: np.ndarray, key: np.ndarray, value: np.ndarray,
                                 attn_mask: np.ndarray | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None, *,
                                 dropout_mask: np.ndarray | None = None,
                                 ) -> tuple[np.ndarray, AttentionCache]:
    """softmax(scale Q K^T + M) V with torch's arguments; returns (out, cache).

    ``dropout_mask`` (bool, True = keep, broadcastable to (..., L, S)) replays a given dropout
    mask; with ``dropout_p > 0`` and no mask one is drawn from ``numpy_impl.random``.
    """
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    scores = scale * (query @ np.swapaxes(key, -1, -2))              # (..., L, S)
    scores = masked_scores(scores, attn_mask, is_causal)              # (..., L, S)
    weights = safe_softmax(scores)                                    # (..., L, S)  P
    keep, keep_scale = None, 1.0
    if dropout_p > 0.0:
        if dropout_mask is None:
            dropout_mask = random.generator().random(weights.shape) >= dropout_p
        keep = np.asarray(dropout_mask, dtype=bool)
        keep_scale = 0.0 if dropout_p >= 1.0 else 1.0 / (1.0 - dropout_p)
        dropped = weights * keep * keep_scale                         # (..., L, S)  P~
    else:
        dropped = weights
    out = dropped @ value                                             # (..., L, Ev)
    return out, AttentionCache(query, key, value, weights, dropped, keep, keep_scale, scale)


def attention_backward(grad_out: np.ndarray, cache: AttentionCache,
                       grad_weights: np.ndarray | None = None,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Returns (dQ, dK, dV, dS); ``grad_weights`` is dL/dP from a second use of the weights."""
    query, key, value, weights, dropped, keep, keep_scale, scale = cache
    # O = P~ V: the product rule gives both factors' gradients
    dvalue = np.swapaxes(dropped, -1, -2) @ grad_out                  # (..., S, Ev)
    ddropped = grad_out @ np.swapaxes(value, -1, -2)                  # (..., L, S)
    # P~ = P * D / (1 - p): the mask is a constant, so it gates the gradient the same way
    dweights = ddropped if keep is None else ddropped * keep * keep_scale
    if grad_weights is not None:                                      # P was also an output
        dweights = dweights + grad_weights
    # P = softmax(S), per row: dS = P * (dP - sum_j dP_j P_j); masked entries have P = 0
    dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
    # S = scale Q K^T + M: through the matrix product into Q and K
    dquery = scale * (dscores @ key)                                  # (..., L, E)
    dkey = scale * (np.swapaxes(dscores, -1, -2) @ query)             # (..., S, E)
    return (sum_to_shape(dquery, query.shape), sum_to_shape(dkey, key.shape),
            sum_to_shape(dvalue, value.shape), dscores)


def scaled_dot_product_attention_backward(grad_out: np.ndarray, cache: AttentionCache,
                                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (dquery, dkey, dvalue) for grad_out = dL/dout."""
    dquery, dkey, dvalue, _ = attention_backward(grad_out, cache)
    return dquery, dkey, dvalue


# --- the function as a Module ------------------------------------------------------------------
class ScaledDotProductAttention(Module):
    """``F.scaled_dot_product_attention`` as a parameter-free Module (no torch.nn counterpart):
    the options in the constructor, the tensors in ``forward``. Masks fixed for the module
    (a dropout keep-mask, an ``attn_mask``) may be given to the constructor; an ``attn_mask``
    passed to ``forward`` takes precedence. A mask is a constant: it gets no gradient."""

    def __init__(self, dropout_p: float = 0.0, is_causal: bool = False,
                 scale: float | None = None, dropout_mask: Any = None,
                 attn_mask: Any = None) -> None:
        super().__init__()
        self.dropout_p = float(dropout_p)
        self.is_causal = is_causal
        self.scale = scale
        self.dropout_mask = None if dropout_mask is None else np.asarray(dropout_mask, bool)
        self.attn_mask = None if attn_mask is None else np.asarray(attn_mask)

    def forward(self, query: np.ndarray, key: np.ndarray, value: np.ndarray,
                attn_mask: np.ndarray | None = None) -> np.ndarray:
        out, self._cache = scaled_dot_product_attention(
            query, key, value, self.attn_mask if attn_mask is None else attn_mask,
            self.dropout_p if self.training else 0.0, self.is_causal, self.scale,
            dropout_mask=self.dropout_mask)
        return out

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return scaled_dot_product_attention_backward(grad_output, self._cache)

    def extra_repr(self) -> str:
        return f"dropout_p={self.dropout_p}, is_causal={self.is_causal}, scale={self.scale}"


# --- single-head self-attention ----------------------------------------------------------------
class SelfAttention(Module):
    r"""One attention head over x of shape (batch, seq_len, embed_dim):

        Q = x Wq^T + bq,  K = x Wk^T + bk,  V = x Wv^T + bv     (B, T, C) each
        out, P = attention(Q, K, V)                              (B, T, C), (B, T, T)

    Backward: dQ, dK, dV from the attention's backward, then each projection's backward;
    x feeds all three, so dL/dx is the sum of the three input gradients. ``attn_mask`` has
    scaled_dot_product_attention's meaning (bool True = attend, float added); the weights
    are an output too, so ``backward`` also takes (dL/dout, dL/dweights).
    """

    def __init__(self, embed_dim: int, bias: bool = True, is_causal: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.is_causal = is_causal
        self.dropout = float(dropout)
        self.query = Linear(embed_dim, embed_dim, bias=bias)
        self.key = Linear(embed_dim, embed_dim, bias=bias)
        self.value = Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, x: np.ndarray, attn_mask: np.ndarray | None = None,
                dropout_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        q = self.query(x)                                             # (B, T, C)
        k = self.key(x)                                               # (B, T, C)
        v = self.value(x)                                             # (B, T, C)
        out, self._cache = scaled_dot_product_attention(
            q, k, v, attn_mask, self.dropout if self.training else 0.0, self.is_causal,
            dropout_mask=dropout_mask)                                # (B, T, C)
        return out, self._cache.weights                               # weights: (B, T, T)

    def backward(self, grad_output: Any) -> np.ndarray:
        """``grad_output``: dL/dout, or (dL/dout, dL/dweights) when the weights were used."""
        grad_out, grad_weights = grad_output if isinstance(grad_output, tuple) \
            else (grad_output, None)
        dq, dk, dv, _ = attention_backward(grad_out, self._cache, grad_weights)
        # x -> (Q, K, V): a fork, so the three paths' gradients add up
        return self.query.backward(dq) + self.key.backward(dk) + self.value.backward(dv)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, is_causal={self.is_causal}, dropout={self.dropout}"
