r"""Gradient flow by depth in PyTorch: ``depth`` transformer blocks (the ``transformer``
family's torch twin), pre-LN with a final LayerNorm or post-LN; autograd does the backward.

    pre-LN   x_{l+1} = x'_l + FF(LN_2(x'_l)),  x'_l = x_l + SA(LN_1(x_l));   y = LN_f(x_L)
    post-LN  x_{l+1} = LN_2(x'_l + FF(x'_l)),  x'_l = LN_1(x_l + SA(x_l));   y = x_L

The residual stream x_0 .. x_L keeps its gradient (``retain_grad``) as ``stream.<l>``;
``gradient_norms`` gives ||dL/dx_l|| and each block's parameter-gradient norm.
"""
from __future__ import annotations

import torch
from torch import nn

from torch_impl.transformer.transformer_block import TransformerBlock


class DeepTransformer(nn.Module):

    def __init__(self, d_model: int = 16, nhead: int = 2, depth: int = 6,
                 norm_first: bool = True, dim_feedforward: int | None = None) -> None:
        super().__init__()
        self.depth = depth
        self.norm_first = norm_first
        self.blocks = nn.ModuleList(TransformerBlock(d_model, nhead, dim_feedforward,
                                                     norm_first=norm_first)
                                    for _ in range(depth))
        self.ln_f = nn.LayerNorm(d_model) if norm_first else None
        self.intermediates: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stream = {"stream.0": x}
        for layer, block in enumerate(self.blocks, 1):
            x = block(x)                                               # (N, T, C)
            stream[f"stream.{layer}"] = x
        for tensor in stream.values():
            if tensor.requires_grad:
                tensor.retain_grad()                                   # keep dL/dx_l
        self.intermediates = stream
        return self.ln_f(x) if self.ln_f is not None else x


def gradient_norms(model: DeepTransformer) -> dict[str, torch.Tensor]:
    """After backward: ||dL/dx_l|| for layer = 0..L and each block's parameter-gradient norm."""
    residual = torch.stack([model.intermediates[f"stream.{layer}"].grad.norm()
                            for layer in range(model.depth + 1)])
    params = torch.stack([torch.sqrt(sum((p.grad.double() ** 2).sum() for p in block.parameters()))
                          for block in model.blocks])
    return {"residual": residual, "params": params}
