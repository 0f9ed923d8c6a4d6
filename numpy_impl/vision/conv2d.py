r"""2-D convolution (cross-correlation, as in every deep-learning library), forward and backward
by hand, through im2col and one matrix product each way -- ``torch.nn.Conv2d``.

Input x (B, C, H, W), weight W (O, C/G, KH, KW), bias b (O,); stride s, dilation d, zero
padding, G groups (channel group g sees input channels g C/G .. (g+1) C/G - 1 and produces
output channels g O/G .. (g+1) O/G - 1). Forward, for output channel o of group g:

    y[b, o, y, x] = b[o] + sum_{c, i, j} W[o, c, i, j] x_pad[b, g C/G + c, y s + i d, x s + j d]

    OH = floor((H + pad_top + pad_bottom - d (KH - 1) - 1) / s) + 1        (OW alike)

With im2col (``numpy_impl.im2col``) the patches become the columns of a matrix, and per group

    cols_g = im2col(x_pad)[rows of group g]          (C/G KH KW, B OH OW)
    Y_g    = W_g cols_g + b_g                        W_g = W[group g] as (O/G, C/G KH KW)

Backward, given g = dL/dy, as G_g (O/G, B OH OW) per group -- the matrix product's rules:

    dL/db     = sum over b, y, x of g                (O,)
    dL/dW_g   = G_g cols_g^T                         (O/G, C/G KH KW)
    dL/dcols_g = W_g^T G_g                           (C/G KH KW, B OH OW)
    dL/dx     = col2im(dL/dcols), padding cropped    (B, C, H, W)

col2im is im2col's adjoint: a pixel copied into several overlapping patches receives the sum
of their gradients (a vectorized scatter-add, see ``numpy_impl.im2col``). The groups are a
batch dimension of the matrix products (``np.matmul`` over a leading G axis), so a depthwise
convolution (G = C) is the same code.

Padding: an int or a pair (symmetric), ``"valid"`` (none) or ``"same"`` (stride 1 only, as
torch: total d (K - 1) per axis, the odd one out on the bottom/right). Zero padding only.
Initialization as torch's: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C/G KH KW
(kaiming_uniform_ with a = sqrt(5)).
"""
from __future__ import annotations

import numpy as np

from numpy_impl import random
from numpy_impl.im2col import (
    Pad4,
    Pair,
    check_conv_arguments,
    col2im,
    im2col,
    output_size,
    pad2d,
    pair,
)
from numpy_impl.module import Module, Parameter


def resolve_padding(padding: str | int | tuple[int, int], kernel: Pair, stride: Pair,
                    dilation: Pair) -> Pad4:
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
    ph, pw = pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"negative padding is not supported, got {padding!r}")
    return ph, ph, pw, pw


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair,
                   padding: Pad4, dilation: Pair, groups: int):
    """y = conv2d(x, W) + b for x (B, C, H, W); returns (y, cache)."""
    batch, channels, height, width = x.shape
    out_channels, group_channels, kh, kw = weight.shape
    if channels != group_channels * groups:
        raise ValueError(f"Given groups={groups}, weight of size {tuple(weight.shape)}, expected "
                         f"input{tuple(x.shape)} to have {group_channels * groups} channels, "
                         f"but got {channels} channels instead")
    top, bottom, left, right = padding
    out_size = (output_size(height, kh, stride[0], top, bottom, dilation[0]),
                output_size(width, kw, stride[1], left, right, dilation[1]))
    if min(out_size) < 1:
        raise ValueError(f"Calculated padded input size per channel: ({height + top + bottom} x "
                         f"{width + left + right}). Kernel size: ({dilation[0] * (kh - 1) + 1}"
                         f" x {dilation[1] * (kw - 1) + 1}). Kernel size can't be greater than "
                         "actual input size")
    x_pad = pad2d(x, padding)                                        # (B, C, Hp, Wp)
    cols = im2col(x_pad, (kh, kw), stride, dilation, out_size)       # (C KH KW, B OH OW)
    cols = cols.reshape(groups, -1, cols.shape[1])                   # (G, C/G KH KW, B OH OW)
    w_mat = weight.reshape(groups, out_channels // groups, -1)       # (G, O/G, C/G KH KW)
    y = np.matmul(w_mat, cols)                                       # (G, O/G, B OH OW)  Y = W cols
    y = y.reshape(out_channels, batch, *out_size).transpose(1, 0, 2, 3)  # (B, O, OH, OW)
    y = np.ascontiguousarray(y)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)                               # + b[o] at every pixel
    cache = (cols, w_mat, x_pad.shape, (kh, kw), stride, padding, dilation, out_size,
             bias is not None)
    return y, cache


def conv2d_backward(dy: np.ndarray, cache):
    """Returns (dx, dW, db) for dy = dL/dy (B, O, OH, OW); db is None without a bias."""
    cols, w_mat, padded_shape, kernel, stride, padding, dilation, out_size, has_bias = cache
    groups, group_out, _ = w_mat.shape
    # the upstream gradient as the matrix G: (G, O/G, B OH OW), matching Y = W cols
    g_mat = dy.transpose(1, 0, 2, 3).reshape(groups, group_out, -1)
    dbias = dy.sum(axis=(0, 2, 3)) if has_bias else None            # (O,)  b reaches every pixel
    # dL/dW = G cols^T                                                (G, O/G, C/G KH KW)
    dweight = np.matmul(g_mat, cols.transpose(0, 2, 1))
    dweight = dweight.reshape(groups * group_out, -1, *kernel)       # (O, C/G, KH, KW)
    # dL/dcols = W^T G                                                 (G, C/G KH KW, B OH OW)
    dcols = np.matmul(w_mat.transpose(0, 2, 1), g_mat)
    dcols = dcols.reshape(-1, dcols.shape[2])                        # (C KH KW, B OH OW)
    dx_pad = col2im(dcols, padded_shape, kernel, stride, dilation, out_size)  # (B, C, Hp, Wp)
    top, bottom, left, right = padding
    dx = dx_pad[:, :, top:padded_shape[2] - bottom, left:padded_shape[3] - right]  # (B, C, H, W)
    return dx, dweight, dbias


class Conv2d(Module):
    """``torch.nn.Conv2d``: y = W * x + b over 2-D images (B, C, H, W) or (C, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1,
                 padding: str | int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        check_conv_arguments("Conv2d", in_channels, out_channels, groups, padding_mode)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding")
        self.groups = groups
        self.padding_mode = padding_mode
        self._padding = resolve_padding(padding, self.kernel_size, self.stride, self.dilation)
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0
        self.weight = Parameter(random.uniform(
            -bound, bound, (out_channels, in_channels // groups, *self.kernel_size)))
        self.bias = Parameter(random.uniform(-bound, bound, (out_channels,))) if bias else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim not in (3, 4):
            raise ValueError(f"Conv2d expects a 3-D (C, H, W) or 4-D (B, C, H, W) input, got "
                             f"shape {tuple(x.shape)}")
        self._unbatched = x.ndim == 3
        x = x[None] if self._unbatched else x                           # (B, C, H, W)
        y, self._cache = conv2d_forward(
            x, self.weight.data, None if self.bias is None else self.bias.data,
            self.stride, self._padding, self.dilation, self.groups)
        return y[0] if self._unbatched else y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dy = grad_output[None] if self._unbatched else grad_output      # (B, O, OH, OW)
        dx, dweight, dbias = conv2d_backward(dy, self._cache)
        self.weight.grad += dweight                                     # accumulate, as autograd
        if self.bias is not None:
            self.bias.grad += dbias
        return dx[0] if self._unbatched else dx

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text
