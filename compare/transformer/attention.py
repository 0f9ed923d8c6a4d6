"""Compare scaled dot-product attention, softmax(scale Q K^T + M) V, and single-head self-attention.

``ScaledDotProductAttention`` cases: 3-d and 4-d inputs (batch, heads), cross-attention
(L != S, Ev != E), 5-d inputs, a causal mask (also with L > S and L < S), a boolean mask
broadcast over batch and heads with a row whose keys are all masked (output and gradients
0), a float mask (added) with -inf entries and an all -inf row, a ``scale`` override,
dropout on the weights, and keys broadcast over the batch. Boolean masks are inputs; a
float mask and a dropout keep-mask are drawn once per case and given to the constructors
(twins and witness alike), so that every floating-point input is one that gets a gradient
-- which is also what lets ``verify`` take the functional pair
``(scaled_dot_product_attention, scaled_dot_product_attention_backward)`` on every case.
``SelfAttention`` cases: query/key/value projections of one sequence, with and without
bias, causal, a key-padding mask; the attention weights are an output too (a random
upstream gradient reaches them).

Witness: ``F.scaled_dot_product_attention``; with dropout, torch's own math kernel
``aten._scaled_dot_product_attention_math``, the one F.scaled_dot_product_attention runs on
the CPU, which (unlike F.scaled_dot_product_attention) accepts a dropout mask; for
``SelfAttention`` the weights come from that kernel's second output.
Run: ``python -m compare.transformer.attention``.

Benchmark size: (B, H, T, E) = (16, 4, 64, 32), causal; SelfAttention(128) on (16, 64, 128).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compare.concept import Bench, Case, Concept, Draw, randn
from compare.tolerances import Tolerance
from numpy_impl.transformer import attention as numpy_twin
from torch_impl.transformer import attention as torch_twin


# --- the built-in witnesses ----------------------------------------------------------------------
def additive(attn_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A bool mask as the float mask the math kernel expects (F.scaled_dot_product_attention
    converts it before calling the kernel; called directly, the kernel would add True as 1)."""
    if attn_mask is None or attn_mask.dtype != torch.bool:
        return attn_mask
    return torch.zeros(attn_mask.shape, dtype=dtype).masked_fill(~attn_mask, float("-inf"))


def math_kernel(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                is_causal: bool = False, scale: float | None = None,
                dropout_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """torch's CPU math kernel of SDPA: (out, weights), a dropout mask replayed."""
    with warnings.catch_warnings():  # "Dropout mask should only be used for testing purposes"
        warnings.simplefilter("ignore")
        return torch.ops.aten._scaled_dot_product_attention_math(
            query, key, value, additive(attn_mask, query.dtype), dropout_p, is_causal,
            dropout_mask, scale=scale)


class BuiltinSDPA(nn.Module):
    """``F.scaled_dot_product_attention`` behind the twins' constructor."""

    def __init__(self, dropout_p: float = 0.0, is_causal: bool = False,
                 scale: float | None = None, dropout_mask: Any = None,
                 attn_mask: Any = None) -> None:
        super().__init__()
        self.dropout_p, self.is_causal, self.scale = dropout_p, is_causal, scale
        self.dropout_mask = None if dropout_mask is None \
            else torch.as_tensor(dropout_mask, dtype=torch.bool)
        self.attn_mask = None if attn_mask is None else torch.as_tensor(attn_mask)

    def forward(self, query, key, value, attn_mask=None):
        attn_mask = self.attn_mask if attn_mask is None else attn_mask
        if attn_mask is not None and attn_mask.dtype != torch.bool:
            attn_mask = attn_mask.to(query.dtype)  # SDPA wants the query's dtype
        dropout_p = self.dropout_p if self.training else 0.0
        if dropout_p > 0.0:  # F.scaled_dot_product_attention cannot replay a dropout mask
            return math_kernel(query, key, value, attn_mask, dropout_p, self.is_causal,
                               self.scale, self.dropout_mask)[0]
        return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask,
                                              is_causal=self.is_causal, scale=self.scale)


class BuiltinSelfAttention(nn.Module):
    """``nn.Linear`` projections and torch's math attention kernel, which returns the weights."""

    def __init__(self, embed_dim: int, bias: bool = True, is_causal: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.is_causal = is_causal
        self.query = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.key = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.value = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, x, attn_mask=None):
        return math_kernel(self.query(x), self.key(x), self.value(x), attn_mask,
                           is_causal=self.is_causal)


# --- inputs ------------------------------------------------------------------------------------
def bool_mask(*shape: int, keep: float = 0.7, dead_row: bool = True) -> Draw:
    """True = attend; every query row keeps its first key, except row 1 of the first batch
    entry, which has none: the all-masked row."""
    def draw(rng: np.random.Generator) -> np.ndarray:
        mask = rng.random(shape) < keep
        mask[..., 0] = True
        if dead_row:
            mask[(0,) * (len(shape) - 2) + (1,)] = False
        return mask
    return draw


def float_mask(*shape: int, seed: int) -> np.ndarray:
    """Drawn once (fixed per case): N(0, 1) rounded to multiples of 1/8 (exact in float32 too),
    some entries -inf, and row 2 entirely -inf."""
    rng = np.random.default_rng(seed)
    mask = np.round(8 * rng.standard_normal(shape)) / 8
    mask[(rng.random(shape) < 0.25)] = -np.inf
    mask[..., 0] = 0.5
    mask[..., 2, :] = -np.inf
    return mask


def keep_mask(p: float, *shape: int, seed: int) -> np.ndarray:
    """A dropout keep-mask drawn once (fixed per case), P(keep) = 1 - p."""
    return np.random.default_rng(seed).random(shape) >= p


def _sdpa(name: str, query: Draw, key: Draw, value: Draw, mask: Draw | None = None,
          **init: Any) -> Case:
    """``mask``: a boolean attn_mask drawn as an input; a float one goes in ``init``."""
    inputs = dict(query=query, key=key, value=value)
    if mask is not None:
        inputs["attn_mask"] = mask
    return Case(name, numpy=numpy_twin.ScaledDotProductAttention,
                torch=torch_twin.ScaledDotProductAttention, builtin=BuiltinSDPA, init=init,
                inputs=inputs, prepare=None)


def _self(name: str, *, attn_mask: Draw | None = None, **init: Any) -> Case:
    inputs = dict(x=randn(2, 5, 8))
    if attn_mask is not None:
        inputs["attn_mask"] = attn_mask
    return Case(name, numpy=numpy_twin.SelfAttention, torch=torch_twin.SelfAttention,
                builtin=BuiltinSelfAttention, init=dict(embed_dim=8, **init), inputs=inputs)


CONCEPT = Concept(
    name="attention",
    family="transformer",
    summary="scaled dot-product attention softmax(scale Q K^T + M) V, and one self-attention head",
    compares="output; grads of query, key, value: 3-d, 4-d and 5-d, "
             "cross-attention, causal (L = S, L > S, L < S), bool mask broadcast over batch "
             "and heads with an all-masked row (zeros, as torch), float mask with -inf, scale, "
             "dropout (one shared keep-mask), broadcast keys; single-head self-attention: "
             "output and weights, grads of x and the query/key/value projections",
    witness="F.scaled_dot_product_attention",
    bench=Bench("causal SDPA on (B, H, T, E) = (16, 4, 64, 32), and causal SelfAttention(128) "
                "on x (B, T, C) = (16, 64, 128)",
                cases=(_sdpa("bench-sdpa", randn(16, 4, 64, 32), randn(16, 4, 64, 32),
                             randn(16, 4, 64, 32), is_causal=True),
                       Case("bench-self", numpy=numpy_twin.SelfAttention,
                            torch=torch_twin.SelfAttention, builtin=BuiltinSelfAttention,
                            init=dict(embed_dim=128, is_causal=True),
                            inputs=dict(x=randn(16, 64, 128))))),
    # dL/d(key.bias) is 0 in exact arithmetic: the key bias adds q_i . b_k to every score of
    # row i, and softmax ignores a constant per row (sum_j dS_ij = 0). Each side returns its
    # rounding residue, so only an absolute floor can compare it. Measured over seeds 0-20:
    # float64 <= 6e-16 (both checks), float32 <= 2.4e-7, finite differences <= 1.3e-9
    # (the loss's rounding divided by the step). Bounds 10x above, this tensor only.
    tolerance={"float64:grad.param.key.bias": Tolerance(rtol=1e-10, atol=1e-14),
               "float32:grad.param.key.bias": Tolerance(rtol=1e-4, atol=3e-6),
               "fd:grad.param.key.bias": Tolerance(rtol=1e-6, atol=2e-8)},
    cases=[
        _sdpa("3d", randn(2, 4, 6), randn(2, 4, 6), randn(2, 4, 6)),
        _sdpa("4d-heads", randn(2, 3, 4, 5), randn(2, 3, 4, 5), randn(2, 3, 4, 5)),
        _sdpa("cross-attention", randn(2, 3, 6), randn(2, 5, 6), randn(2, 5, 4)),
        _sdpa("causal", randn(2, 2, 5, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 4),
              is_causal=True),
        _sdpa("causal-L>S", randn(2, 6, 4), randn(2, 3, 4), randn(2, 3, 4), is_causal=True),
        _sdpa("causal-L<S", randn(2, 3, 4), randn(2, 6, 4), randn(2, 6, 4), is_causal=True),
        _sdpa("bool-mask-broadcast", randn(2, 3, 4, 5), randn(2, 3, 6, 5), randn(2, 3, 6, 5),
              bool_mask(2, 1, 4, 6)),
        _sdpa("float-mask", randn(2, 3, 4, 5), randn(2, 3, 6, 5), randn(2, 3, 6, 5),
              attn_mask=float_mask(4, 6, seed=3)),
        _sdpa("5d", randn(2, 2, 2, 3, 4), randn(2, 2, 2, 5, 4), randn(2, 2, 2, 5, 3)),
        _sdpa("scale", randn(2, 4, 6), randn(2, 5, 6), randn(2, 5, 6), scale=0.3),
        _sdpa("dropout-bool-mask", randn(2, 2, 4, 5), randn(2, 2, 6, 5), randn(2, 2, 6, 5),
              bool_mask(4, 6), dropout_p=0.25, dropout_mask=keep_mask(0.25, 2, 2, 4, 6, seed=1)),
        _sdpa("dropout-causal", randn(2, 5, 4), randn(2, 5, 4), randn(2, 5, 4),
              dropout_p=0.4, is_causal=True, dropout_mask=keep_mask(0.4, 2, 5, 5, seed=2)),
        _sdpa("broadcast-keys", randn(2, 3, 4, 5), randn(1, 3, 6, 5), randn(1, 3, 6, 5)),
        _self("self-attention"),
        _self("self-attention-no-bias", bias=False),
        _self("self-attention-causal", is_causal=True),
        _self("self-attention-padding", attn_mask=bool_mask(2, 1, 5, dead_row=False)),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
