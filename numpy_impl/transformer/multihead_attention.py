r"""Multi-head attention, forward and backward by hand -- torch.nn.MultiheadAttention.

Inputs (L, N, E) for the queries and (S, N, E) for keys and values ((N, L, E) with
``batch_first=True``; (L, E) unbatched). H heads of size D = E / H:

    [Q | K | V] = query Wq^T + bq,  key Wk^T + bk,  value Wv^T + bv
                  Wq, Wk, Wv: the three (E, E) blocks of in_proj_weight (3E, E), rows q, k, v
    Q_h, K_h, V_h = head h's D columns of Q, K, V                   (N, H, L|S, D)
    C_h = attention(Q_h, K_h, V_h, M)  = softmax(Q_h K_h^T / sqrt(D) + M) V_h
    out = concat_h(C_h) Wo^T + bo                                    out_proj

The mask M is one additive float mask merged from two, as torch merges them: ``attn_mask``
(L, S) or (N*H, L, S) and ``key_padding_mask`` (N, S). Here a boolean True means "masked"
(-inf) -- the opposite of scaled_dot_product_attention's boolean mask -- and a float mask is
added. ``is_causal`` is torch's hint: it needs ``attn_mask`` (the causal mask) too; without a
key padding mask and with ``need_weights=False`` torch lets SDPA build the causal mask and
ignores ``attn_mask``, and so does this twin.

Backward, given G = dL/dout (the weights are returned for inspection, not differentiated):

    dL/dconcat   = G Wo,  dL/dWo += G^T concat,  dL/dbo += sum G      out_proj's backward
    dL/dC_h      = the h-th D columns of dL/dconcat                   split the heads
    dQ_h, dK_h, dV_h = attention backward of head h                   dS = P (dP - sum dP P)
    dL/dWq += dQ^T query,  dL/dbq += sum dQ,  dL/dquery = dQ Wq        (k and v alike)

``backward(grad_output)`` returns (dquery, dkey, dvalue); for self-attention the caller
passes one tensor three times and adds the three gradients.

Parameters and initialization as torch: ``in_proj_weight`` (3E, E) Xavier-uniform,
``in_proj_bias`` (3E,) zeros, ``out_proj`` a Linear(E, E) whose bias is zeroed; a torch
state dict loads unchanged.

Weights: with ``need_weights=True`` torch computes a plain softmax and returns the weights
after dropout, averaged over heads (N, L, S) or per head (N, H, L, S); a query whose keys are
all masked then gives NaN -- its weights, its output row, and in the backward every
gradient it reaches (all of them), as in torch. With ``need_weights=False`` torch uses
scaled_dot_product_attention, where that row is 0 with zero gradient; here likewise.

Refused with a clear error: ``add_bias_kv``, ``add_zero_attn``, ``kdim``/``vdim`` other than
``embed_dim`` (separate projection weights).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from numpy_impl import random
from numpy_impl.layers.linear import Linear, linear_backward, linear_forward
from numpy_impl.module import Module, Parameter
from numpy_impl.transformer.attention import (
    scaled_dot_product_attention,
    scaled_dot_product_attention_backward,
)


def additive_mask(mask: np.ndarray | None, dtype: np.dtype) -> np.ndarray | None:
    """torch's canonical mask: bool True -> -inf (masked), False -> 0; a float mask as is."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return np.where(mask, -np.inf, 0.0).astype(dtype)
    return mask.astype(dtype, copy=False)


def merged_mask(attn_mask: np.ndarray | None, key_padding_mask: np.ndarray | None,
                batch: int, num_heads: int, length: int, source_length: int,
                dtype: np.dtype) -> np.ndarray | None:
    """attn_mask + key_padding_mask as one float mask broadcastable to (N, H, L, S)."""
    attn = additive_mask(attn_mask, dtype)
    if attn is not None:
        if attn.ndim == 2 and attn.shape != (length, source_length):
            raise RuntimeError(f"The shape of the 2D attn_mask is {attn.shape}, but should be "
                               f"{(length, source_length)}.")
        if attn.ndim == 3:
            if attn.shape != (batch * num_heads, length, source_length):
                raise RuntimeError(f"The shape of the 3D attn_mask is {attn.shape}, but should "
                                   f"be {(batch * num_heads, length, source_length)}.")
            attn = attn.reshape(batch, num_heads, length, source_length)  # (N, H, L, S)
        if attn.ndim not in (2, 3, 4):
            raise RuntimeError(f"attn_mask's dimension {attn.ndim} is not supported")
    padding = additive_mask(key_padding_mask, dtype)
    if padding is not None:
        if padding.shape != (batch, source_length):
            raise AssertionError(f"expecting key_padding_mask shape of {(batch, source_length)},"
                                 f" but got {padding.shape}")
        padding = padding[:, None, None, :]                                # (N, 1, 1, S)
        attn = padding if attn is None else attn + padding
    return attn


def xavier_uniform(shape: tuple[int, int]) -> np.ndarray:
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)): torch's xavier_uniform_ for a matrix."""
    bound = float(np.sqrt(6.0 / (shape[0] + shape[1])))
    return random.uniform(-bound, bound, shape)


class MultiheadAttention(Module):
    """``torch.nn.MultiheadAttention`` with packed in-projection, by hand."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        if embed_dim % num_heads != 0:
            raise AssertionError("embed_dim must be divisible by num_heads")
        if add_bias_kv or add_zero_attn:
            raise ValueError(
                "MultiheadAttention (NumPy twin): add_bias_kv and add_zero_attn are not "
                "supported; construct it with add_bias_kv=False, add_zero_attn=False")
        if (kdim is not None and kdim != embed_dim) or (vdim is not None and vdim != embed_dim):
            raise ValueError(
                "MultiheadAttention (NumPy twin): kdim and vdim must equal embed_dim (the packed "
                f"in_proj_weight); got kdim={kdim}, vdim={vdim}, embed_dim={embed_dim}")
        self.embed_dim = embed_dim
        self.kdim = self.vdim = embed_dim
        self.num_heads = num_heads
        self.dropout = float(dropout)
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = False
        self.in_proj_weight = Parameter(xavier_uniform((3 * embed_dim, embed_dim)))
        self.in_proj_bias = Parameter(np.zeros(3 * embed_dim, random.default_dtype())) \
            if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            self.out_proj.bias.data[...] = 0.0                               # torch zeroes it

    def _projection(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Block i (0 = q, 1 = k, 2 = v) of the packed in-projection."""
        E = self.embed_dim
        weight = self.in_proj_weight.data[i * E:(i + 1) * E]                 # (E, E)
        bias = None if self.in_proj_bias is None else self.in_proj_bias.data[i * E:(i + 1) * E]
        return weight, bias

    def forward(self, query: np.ndarray, key: np.ndarray, value: np.ndarray,
                key_padding_mask: np.ndarray | None = None, need_weights: bool = True,
                attn_mask: np.ndarray | None = None, average_attn_weights: bool = True,
                is_causal: bool = False, *, dropout_mask: np.ndarray | None = None,
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """As torch's; ``dropout_mask`` (bool keep-mask, (N, H, L, S)) replays dropout."""
        batched = query.ndim == 3
        if not batched:                                      # (L, E) -> (L, 1, E)
            query, key, value = query[:, None], key[:, None], value[:, None]
            if key_padding_mask is not None:                 # (S,) -> (1, S)
                key_padding_mask = np.asarray(key_padding_mask)[None]
        elif self.batch_first:                               # (N, L, E) -> (L, N, E)
            query, key, value = (np.swapaxes(t, 0, 1) for t in (query, key, value))
        L, N, E = query.shape
        S = key.shape[0]
        H, D = self.num_heads, self.head_dim
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use "
                               "the Transformer module method `generate_square_subsequent_mask`"
                               " to create this mask.")
        # torch's choice: only without padding mask and weights does the hint replace attn_mask
        sdpa_causal = is_causal and key_padding_mask is None and not need_weights
        mask = None if sdpa_causal else merged_mask(attn_mask, key_padding_mask, N, H, L, S,
                                                    query.dtype)
        # in-projection: three linear maps sharing the packed parameters
        q, cache_q = linear_forward(query, *self._projection(0))            # (L, N, E)
        k, cache_k = linear_forward(key, *self._projection(1))              # (S, N, E)
        v, cache_v = linear_forward(value, *self._projection(2))            # (S, N, E)
        # split the heads: (L, N, E) -> (L, N, H, D) -> (N, H, L, D)
        qh = q.reshape(L, N, H, D).transpose(1, 2, 0, 3)                    # (N, H, L, D)
        kh = k.reshape(S, N, H, D).transpose(1, 2, 0, 3)                    # (N, H, S, D)
        vh = v.reshape(S, N, H, D).transpose(1, 2, 0, 3)                    # (N, H, S, D)
        dropout_p = self.dropout if self.training else 0.0
        context, cache = scaled_dot_product_attention(
            qh, kh, vh, mask, dropout_p, sdpa_causal, dropout_mask=dropout_mask)  # (N, H, L, D)
        weights = None
        if need_weights:
            if mask is not None:  # torch's plain softmax: a query with no visible key is NaN
                dead = np.isneginf(np.broadcast_to(mask, (N, H, L, S))).all(axis=-1)[..., None]
                context = np.where(dead, np.nan, context)                   # (N, H, L, D)
                # and so are its weights: the backward then spreads the NaN to every key and
                # value, as torch's autograd does
                cache = cache._replace(weights=np.where(dead, np.nan, cache.weights),
                                       dropped=np.where(dead, np.nan, cache.dropped))
            weights = cache.dropped                                         # (N, H, L, S)
            if average_attn_weights:
                weights = weights.mean(axis=1)                              # (N, L, S)
        # merge the heads back: (N, H, L, D) -> (L, N, H, D) -> (L, N, E)
        merged = context.transpose(2, 0, 1, 3).reshape(L, N, E)             # (L, N, E)
        out = self.out_proj(merged)                                         # (L, N, E)
        self._cache = (cache, cache_q, cache_k, cache_v, batched, (L, S, N))
        if not batched:
            return out[:, 0], None if weights is None else weights[0]
        if self.batch_first:
            out = np.swapaxes(out, 0, 1)                                    # (N, L, E)
        return out, weights

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """dL/dattn_output -> (dquery, dkey, dvalue) in the inputs' layout."""
        cache, cache_q, cache_k, cache_v, batched, (L, S, N) = self._cache
        H, D, E = self.num_heads, self.head_dim, self.embed_dim
        if not batched:
            grad_output = grad_output[:, None]                              # (L, 1, E)
        elif self.batch_first:
            grad_output = np.swapaxes(grad_output, 0, 1)                    # (L, N, E)
        # out = merged Wo^T + bo: out_proj's own backward
        dmerged = self.out_proj.backward(grad_output)                       # (L, N, E)
        # merging the heads was a reshape: split the gradient the same way
        dcontext = dmerged.reshape(L, N, H, D).transpose(1, 2, 0, 3)        # (N, H, L, D)
        # through the attention of every head at once
        dqh, dkh, dvh = scaled_dot_product_attention_backward(dcontext, cache)
        # undo the head split: (N, H, L, D) -> (L, N, E)
        dq = dqh.transpose(2, 0, 1, 3).reshape(L, N, E)                     # (L, N, E)
        dk = dkh.transpose(2, 0, 1, 3).reshape(S, N, E)                     # (S, N, E)
        dv = dvh.transpose(2, 0, 1, 3).reshape(S, N, E)                     # (S, N, E)
        # three linear maps; their weight and bias gradients fill the packed blocks
        grads = []
        for i, (d, c) in enumerate(((dq, cache_q), (dk, cache_k), (dv, cache_v))):
            dx, dweight, dbias = linear_backward(d, c)
            self.in_proj_weight.grad[i * E:(i + 1) * E] += dweight
            if self.in_proj_bias is not None:
                self.in_proj_bias.grad[i * E:(i + 1) * E] += dbias
            grads.append(dx)
        if not batched:
            return tuple(g[:, 0] for g in grads)
        if self.batch_first:
            return tuple(np.swapaxes(g, 0, 1) for g in grads)
        return tuple(grads)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, " \
               f"dropout={self.dropout}, batch_first={self.batch_first}"

