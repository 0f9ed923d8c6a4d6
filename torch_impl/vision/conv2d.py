r"""2-D convolution in PyTorch, written as im2col (``F.unfold``) and one matrix product;
autograd does the backward. ``F.conv2d`` (``nn.Conv2d``) is the witness, not used here.

    cols_g = unfold(x_pad)[rows of group g]          (B, C/G KH KW, OH OW)
    y_g    = W_g @ cols_g + b_g                      W_g: (O/G, C/G KH KW)

Padding: an int or a pair, ``"valid"`` or ``"same"`` (stride 1 only; the odd one out goes on
the bottom/right, as torch). Zero padding only. Initialization as ``torch.nn.Conv2d``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair


def resolve_padding(padding: str | int | tuple[int, int], kernel: tuple[int, int],
                    stride: tuple[int, int], dilation: tuple[int, int],
                    ) -> tuple[int, int, int, int]:
    """torch's padding argument as explicit (top, bottom, left, right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding != "same":
            raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                             "{'valid', 'same'}")
        if stride != (1, 1):
            raise ValueError("padding='same' is not supported for strided convolutions")
        total_h, total_w = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        return total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2
    ph, pw = _pair(padding)
    if ph < 0 or pw < 0:
        raise ValueError(f"negative padding is not supported, got {padding!r}")
    return ph, ph, pw, pw


def check_conv_arguments(layer: str, in_channels: int, out_channels: int, groups: int,
                         padding_mode: str) -> None:
    """The channel and padding checks Conv1d and Conv2d share, in torch's words."""
    if not isinstance(groups, int) or groups <= 0:
        raise ValueError("groups must be a positive integer")
    if in_channels % groups != 0:
        raise ValueError("in_channels must be divisible by groups")
    if out_channels % groups != 0:
        raise ValueError("out_channels must be divisible by groups")
    if padding_mode != "zeros":
        raise ValueError(f"padding_mode {padding_mode!r} is not supported: this {layer} pads "
                         "with zeros only (padding_mode='zeros')")


class Conv2d(nn.Module):
    """Same constructor, parameter names and layout as ``torch.nn.Conv2d`` (zero padding)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1,
                 padding: str | int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        check_conv_arguments("Conv2d", in_channels, out_channels, groups, padding_mode)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.dilation = _pair(dilation)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.groups = groups
        self.padding_mode = padding_mode
        self._padding = resolve_padding(padding, self.kernel_size, self.stride, self.dilation)
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # U(-bound, bound), as nn.Conv2d
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unbatched = x.dim() == 3
        if unbatched:
            x = x.unsqueeze(0)                                       # (1, C, H, W)
        top, bottom, left, right = self._padding
        x = F.pad(x, (left, right, top, bottom))                     # (B, C, Hp, Wp), zeros
        batch, _, height, width = x.shape
        kh, kw = self.kernel_size
        out_h = (height - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        out_w = (width - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        cols = F.unfold(x, self.kernel_size, dilation=self.dilation, stride=self.stride)
        cols = cols.view(batch, self.groups, -1, out_h * out_w)      # (B, G, C/G KH KW, OH OW)
        w = self.weight.view(self.groups, self.out_channels // self.groups, -1)  # (G, O/G, ..)
        y = (w @ cols).reshape(batch, self.out_channels, out_h, out_w)  # (B, O, OH, OW)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y.squeeze(0) if unbatched else y
