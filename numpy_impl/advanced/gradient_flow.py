r"""Gradient flow by depth: a stack of transformer blocks, pre-LN or post-LN, and the norm of
the gradient at every layer -- forward and backward by hand.

The model is ``depth`` blocks of ``numpy_impl.transformer.transformer_block`` (causal
self-attention and a GELU MLP, each in a residual connection), with a final LayerNorm for
pre-LN (as GPT-2's ``ln_f``; post-LN blocks already end in one). With x_0 the input and
x_l the residual stream after block l (N, T, C)::

    pre-LN   x_{l+1} = x'_l + FF(LN_2(x'_l)),      x'_l = x_l + SA(LN_1(x_l));   y = LN_f(x_L)
    post-LN  x_{l+1} = LN_2(x'_l + FF(x'_l)),      x'_l = LN_1(x_l + SA(x_l));   y = x_L

Backward, given g = dL/dy, block by block from the top (each block's own backward)::

    dL/dx_L = LN_f^T g  (pre-LN)   or   g  (post-LN)
    dL/dx_l = block_l^T dL/dx_{l+1}

The pre-LN residual passes dL/dx_{l+1} to x_l unchanged and adds the branches' share; the
post-LN stream goes through two LayerNorm Jacobians per block, each dividing by the norm of
what it normalizes. What is measured per layer l (``gradient_norms``):

    residual[l] = ||dL/dx_l||                         l = 0..L (x_0: the input, x_L: the top)
    params[l]   = sqrt(sum over block l's parameters of ||dL/dp||^2)

``intermediates`` / ``intermediate_grads`` hold x_0 .. x_L as ``stream.<l>``.
"""
from __future__ import annotations

import numpy as np

from numpy_impl.layers.layernorm import LayerNorm
from numpy_impl.module import Module, ModuleList
from numpy_impl.transformer.transformer_block import TransformerBlock


class DeepTransformer(Module):
    """``depth`` causal transformer blocks (pre-LN with a final LayerNorm, or post-LN)."""

    def __init__(self, d_model: int = 16, nhead: int = 2, depth: int = 6,
                 norm_first: bool = True, dim_feedforward: int | None = None) -> None:
        super().__init__()
        self.depth = depth
        self.norm_first = norm_first
        self.blocks = ModuleList(TransformerBlock(d_model, nhead, dim_feedforward,
                                                  norm_first=norm_first) for _ in range(depth))
        self.ln_f = LayerNorm(d_model) if norm_first else None
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        stream = {"stream.0": x}                                      # x_0: (N, T, C)
        for layer, block in enumerate(self.blocks.children(), 1):
            x = block(x)                                              # x_l: (N, T, C)
            stream[f"stream.{layer}"] = x
        self.intermediates = stream
        return self.ln_f(x) if self.ln_f is not None else x           # y: (N, T, C)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        # y = LN_f(x_L) (pre-LN) or y = x_L (post-LN)
        g = self.ln_f.backward(grad_output) if self.ln_f is not None else grad_output
        grads = {f"stream.{self.depth}": g}                           # dL/dx_L
        blocks = list(self.blocks.children())
        for layer in reversed(range(self.depth)):
            g = blocks[layer].backward(g)                     # dL/dx_l = block_l^T dL/dx_{l+1}
            grads[f"stream.{layer}"] = g
        self.intermediate_grads = dict(sorted(grads.items(), key=lambda kv: int(kv[0][7:])))
        return g

    def extra_repr(self) -> str:
        return f"depth={self.depth}, norm_first={self.norm_first}"


def gradient_norms(model: DeepTransformer) -> dict[str, np.ndarray]:
    """After a backward: ``residual`` (L + 1,) = ||dL/dx_l||, ``params`` (L,) = the norm of
    block l's parameter gradients (every parameter of the block as one vector)."""
    residual = np.array([np.linalg.norm(model.intermediate_grads[f"stream.{layer}"])
                         for layer in range(model.depth + 1)])
    params = np.array([np.sqrt(sum(np.sum(p.grad.astype(np.float64) ** 2)
                                   for p in block.parameters()))
                       for block in model.blocks.children()])
    return {"residual": residual, "params": params}
