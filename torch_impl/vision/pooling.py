r"""2-D max and average pooling in PyTorch, written as im2col (``F.unfold``) and a reduction
over each window; autograd does the backward. ``nn.MaxPool2d`` / ``nn.AvgPool2d`` are the
witnesses, not used here.

    cols[b, c, k, n] = x_pad[b, c, window n, cell k]         (B, C, KH KW, OH OW)
    max:  y = cols.max(dim=2)        torch.max returns the first maximum: autograd sends the
                                     gradient there, as the built-in kernel does at ties
    avg:  y = cols.sum(dim=2) / D    D as ``torch.nn.AvgPool2d`` (count_include_pad,
                                     ceil_mode overhang, divisor_override)

Output size and the ceil_mode overhang as in ``numpy_impl.vision.pooling``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                     ceil_mode: bool) -> int:
    """torch's pooling_output_shape: floor or ceil, and no window starting in the padding."""
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * padding - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pool_geometry(shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
                  padding: tuple[int, int], dilation: tuple[int, int], ceil_mode: bool,
                  ) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Output size (OH, OW) and the padding (top, bottom, left, right) that fits every window."""
    height, width = shape[-2:]
    for name, value in (("kernel_size", kernel), ("stride", stride), ("dilation", dilation)):
        if min(value) <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    for k, p, d in zip(kernel, padding, dilation, strict=True):
        if p < 0 or p > (d * (k - 1) + 1) // 2:
            raise ValueError(f"pad should be at most half of effective kernel size, but got "
                             f"pad={p}, kernel_size={k} and dilation={d}")
    out = tuple(pool_output_size(n, k, s, p, d, ceil_mode) for n, k, s, p, d in
                zip((height, width), kernel, stride, padding, dilation, strict=True))
    if min(out) < 1:
        raise ValueError(f"Given input size: ({'x'.join(map(str, shape[-3:]))}). Calculated "
                         f"output size: ({shape[-3]}x{out[0]}x{out[1]}). Output size is too small")
    overhang = [max(0, (o - 1) * s + d * (k - 1) + 1 - (n + 2 * p)) for n, o, k, s, p, d in
                zip((height, width), out, kernel, stride, padding, dilation, strict=True)]
    return (out[0], out[1]), (padding[0], padding[0] + overhang[0],
                              padding[1], padding[1] + overhang[1])


def _windows(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int], pads: tuple[int, int, int, int],
             fill: float) -> torch.Tensor:
    """Every window as a column: (B, C, KH KW, OH OW)."""
    top, bottom, left, right = pads
    x = F.pad(x, (left, right, top, bottom), value=fill)                # (B, C, Hp, Wp)
    batch, channels = x.shape[:2]
    cols = F.unfold(x, kernel, dilation=dilation, stride=stride)        # (B, C KH KW, OH OW)
    return cols.view(batch, channels, kernel[0] * kernel[1], -1)


class MaxPool2d(nn.Module):
    """Same constructor as ``torch.nn.MaxPool2d``."""

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = self.kernel_size if stride is None else _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        unbatched = x.dim() == 3
        x = x.unsqueeze(0) if unbatched else x                          # (B, C, H, W)
        batch, channels, height, width = x.shape
        (out_h, out_w), pads = pool_geometry(x.shape, self.kernel_size, self.stride,
                                             self.padding, self.dilation, self.ceil_mode)
        cols = _windows(x, self.kernel_size, self.stride, self.dilation, pads, -float("inf"))
        y, winner = cols.max(dim=2)                                     # (B, C, OH OW)
        y = y.view(batch, channels, out_h, out_w)
        if not self.return_indices:
            return y.squeeze(0) if unbatched else y
        i, j = winner // self.kernel_size[1], winner % self.kernel_size[1]  # window row, column
        rows = torch.arange(out_h).repeat_interleave(out_w)            # (OH OW,)  y of window n
        columns = torch.arange(out_w).repeat(out_h)                     # (OH OW,)  x of window n
        h = rows * self.stride[0] - self.padding[0] + i * self.dilation[0]
        w = columns * self.stride[1] - self.padding[1] + j * self.dilation[1]
        indices = (h * width + w).view(batch, channels, out_h, out_w)
        if unbatched:
            return y.squeeze(0), indices.squeeze(0)
        return y, indices


class AvgPool2d(nn.Module):
    """Same constructor as ``torch.nn.AvgPool2d``."""

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = self.kernel_size if stride is None else _pair(stride)
        self.padding = _pair(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        if divisor_override is not None and divisor_override == 0:
            raise ValueError("divisor must be not zero")
        self.divisor_override = divisor_override

    def _divisor(self, size: tuple[int, int], out: tuple[int, int]) -> torch.Tensor:
        """D(y, x): (OH, OW), the number each window's sum is divided by."""
        if self.divisor_override is not None:
            return torch.full(out, self.divisor_override)
        counts = []
        for n, o, k, s, p in zip(size, out, self.kernel_size, self.stride, self.padding,
                                 strict=True):
            start = torch.arange(o) * s - p
            end = torch.clamp(start + k, max=n + p)
            if self.count_include_pad:
                counts.append(end - start)
            else:
                counts.append(torch.clamp(end, max=n) - torch.clamp(start, min=0))
        return torch.outer(counts[0], counts[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unbatched = x.dim() == 3
        x = x.unsqueeze(0) if unbatched else x                          # (B, C, H, W)
        batch, channels = x.shape[:2]
        out, pads = pool_geometry(x.shape, self.kernel_size, self.stride, self.padding,
                                  (1, 1), self.ceil_mode)
        cols = _windows(x, self.kernel_size, self.stride, (1, 1), pads, 0.0)
        divisor = self._divisor(tuple(x.shape[2:]), out).to(x.dtype)    # (OH, OW)
        y = cols.sum(dim=2).view(batch, channels, *out) / divisor       # (B, C, OH, OW)
        return y.squeeze(0) if unbatched else y
