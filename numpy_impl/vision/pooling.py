r"""2-D max and average pooling, forward and backward by hand, through im2col --
``torch.nn.MaxPool2d`` and ``torch.nn.AvgPool2d``.

Each channel of each image is pooled on its own, so the input is viewed as B C one-channel
planes and im2col (``numpy_impl.im2col``) turns every window into a column:

    cols[(i, j), (b, c, y, x)] = x_pad[b, c, y s + i d, x s + j d]      (KH KW, B C OH OW)

Output size per axis, as torch: OH = floor((H + 2p - d (K - 1) - 1) / s) + 1, or with
``ceil_mode`` the ceiling -- minus one if the last window would start in the right padding.
The extra windows of ``ceil_mode`` read past the padding; that region is padded too (with the
same value as the padding) and counts nowhere.

**Max pooling** (padding with -inf, so a padded cell never wins):

    y[n]      = max_k cols[k, n]                 n = (b, c, y, x)
    k*(n)     = the winning row: the FIRST maximum in row-major window order (as np.argmax),
                which is where torch's kernel sends the gradient when values tie
    dL/dcols[k, n] = g[n] if k = k*(n) else 0    (max is a selector: one input gets it all)
    dL/dx     = col2im(dL/dcols), padding cropped

Only the N winning cells receive anything, so the backward writes g[n] straight into the
cell window n's winner was read from -- a plain assignment when windows do not overlap
(stride >= the dilated kernel: each cell is in one window at most), an accumulating scatter
when they do (a cell can win several windows) -- instead of forming the (KH KW, N) matrix.

``return_indices=True`` also returns, as torch, each winner's flat index h W + w into its
(unpadded) input plane. (A NaN in a window makes the output NaN; the gradient then goes to the
window's first NaN here and in the torch twin, to its last NaN in torch's built-in kernel.)

**Average pooling** (zero padding):

    y[n]      = sum_k cols[k, n] / D(y, x)
    dL/dcols[k, n] = g[n] / D(y, x)              (every cell of the window, equally)
    dL/dx     = col2im(dL/dcols), padding cropped

The divisor D follows torch exactly. Per axis, with window start a = y s - p:

    end   = min(a + K, H + p)                    (the window clipped to the padded input)
    size  = end - a                              (padding included, the ceil_mode overhang not)
    valid = min(end, H) - max(a, 0)              (input cells only)
    D     = size_h size_w  if count_include_pad  else  valid_h valid_w;   or divisor_override
"""
from __future__ import annotations

import numpy as np

from numpy_impl.im2col import Pad4, Pair, col2im, im2col, pad2d, pair
from numpy_impl.module import Module


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                     ceil_mode: bool) -> int:
    """torch's pooling_output_shape: floor or ceil, and no window starting in the padding."""
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * padding - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pool_geometry(shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair,
                  dilation: Pair, ceil_mode: bool) -> tuple[Pair, Pad4]:
    """Output size (OH, OW) and the padding (top, bottom, left, right) that makes every window
    fit: the symmetric padding plus, for ceil_mode, the overhang of the last window."""
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
    pads = (padding[0], padding[0] + overhang[0], padding[1], padding[1] + overhang[1])
    return (out[0], out[1]), pads


def first_argmax(cols: np.ndarray) -> np.ndarray:
    """Per column, the row of the FIRST maximum (a NaN counts as the maximum, as in
    ``np.argmax``): (K, N) -> (N,). The same answer as ``cols.argmax(axis=0)``, computed with
    whole-row operations, because np.argmax over a short axis costs a call per column (3 ms
    for the benchmark's 200k windows of 4, against 1 ms here): the first maximum is the
    smallest k with cols[k] = max_j cols[j] (or NaN)."""
    rows = cols.shape[0]
    peak = cols.max(axis=0)                                   # (N,)  NaN where a NaN is
    winners = cols == peak                                    # (K, N) the maxima
    if np.issubdtype(cols.dtype, np.inexact):
        winners |= np.isnan(cols)                             # ... or NaNs, as np.argmax
    # k - K < 0 where row k wins, 0 elsewhere: the column minimum is the first winner - K
    offsets = (np.arange(rows) - rows).astype(np.min_scalar_type(-rows))[:, None]  # (K, 1)
    return (winners * offsets).min(axis=0).astype(np.intp) + rows


class _Pool2d(Module):
    """Shared plumbing: (C, H, W) or (B, C, H, W) input, planes, im2col, crop."""

    def _columns(self, x: np.ndarray, dilation: Pair, fill: float) -> np.ndarray:
        if x.ndim not in (3, 4):
            raise ValueError(f"{type(self).__name__} expects a 3-D (C, H, W) or 4-D "
                             f"(B, C, H, W) input, got shape {tuple(x.shape)}")
        self._unbatched = x.ndim == 3
        x = x[None] if self._unbatched else x                               # (B, C, H, W)
        self._out, self._pads = pool_geometry(x.shape, self.kernel_size, self.stride,
                                              self.padding, dilation, self.ceil_mode)
        self._shape = x.shape
        x_pad = pad2d(x, self._pads, value=fill)                            # (B, C, Hp, Wp)
        batch, channels, height, width = x_pad.shape
        self._planes = (batch * channels, 1, height, width)                 # one plane each
        return im2col(x_pad.reshape(self._planes), self.kernel_size, self.stride, dilation,
                      self._out)                                            # (KH KW, B C OH OW)

    def _output(self, values: np.ndarray) -> np.ndarray:
        y = values.reshape(*self._shape[:2], *self._out)                    # (B, C, OH, OW)
        return y[0] if self._unbatched else y

    def _input_gradient(self, dcols: np.ndarray, dilation: Pair) -> np.ndarray:
        dx_pad = col2im(dcols, self._planes, self.kernel_size, self.stride, dilation,
                        self._out)                                          # (B C, 1, Hp, Wp)
        return self._crop(dx_pad)

    def _crop(self, dx_pad: np.ndarray) -> np.ndarray:
        """(B C, 1, Hp, Wp) planes back to the input's shape, the padding cut off."""
        batch, channels, height, width = self._shape
        top, _, left, _ = self._pads
        dx_pad = dx_pad.reshape(batch, channels, *self._planes[2:])
        dx = dx_pad[:, :, top:top + height, left:left + width]              # (B, C, H, W)
        return dx[0] if self._unbatched else dx

    @staticmethod
    def _upstream(grad_output: np.ndarray | tuple, unbatched: bool) -> np.ndarray:
        if isinstance(grad_output, tuple):        # (grad of values, None for the indices)
            grad_output = grad_output[0]
        return grad_output[None] if unbatched else grad_output             # (B, C, OH, OW)


class MaxPool2d(_Pool2d):
    """``torch.nn.MaxPool2d``: the largest value of every window."""

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding")
        self.dilation = pair(dilation, "dilation")
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, x: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        cols = self._columns(x, self.dilation, fill=-np.inf)                # (KH KW, N)
        self._winner = first_argmax(cols)                                   # (N,)  first max
        y = self._output(np.take_along_axis(cols, self._winner[None], 0)[0])  # max_k cols[k, n]
        if not self.return_indices:
            return y
        return y, self._output(self._flat_indices())

    def _winner_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Each winner's row h and column w in its padded plane: (B C, OH, OW) each."""
        out_h, out_w = self._out
        i, j = np.divmod(self._winner, self.kernel_size[1])                # window row, column
        i, j = i.reshape(-1, out_h, out_w), j.reshape(-1, out_h, out_w)    # (B C, OH, OW)
        h = np.arange(out_h)[:, None] * self.stride[0] + i * self.dilation[0]
        w = np.arange(out_w)[None, :] * self.stride[1] + j * self.dilation[1]
        return h, w

    def _flat_indices(self) -> np.ndarray:
        """Each winner's index h W + w in its input plane (torch's ``indices``)."""
        width = self._shape[3]
        h, w = self._winner_cells()
        return ((h - self._pads[0]) * width + (w - self._pads[2])).astype(np.int64)

    def backward(self, grad_output: np.ndarray | tuple) -> np.ndarray:
        g = self._upstream(grad_output, self._unbatched)                    # (B, C, OH, OW)
        # dL/dcols is g at each window's winner and 0 elsewhere, and col2im sends it to the cell
        # the winner was read from: only the N winning cells get gradient, so it is written
        # straight there -- no (KH KW, N) matrix.
        planes, height, width = self._planes[0], *self._planes[2:]
        h, w = self._winner_cells()                                         # (B C, OH, OW)
        cell = (np.arange(planes)[:, None, None] * height + h) * width + w  # flat, padded
        dx_pad = np.zeros(planes * height * width, dtype=g.dtype)
        if self._windows_overlap():
            np.add.at(dx_pad, cell.reshape(-1), g.reshape(-1))              # a cell can win twice
        else:
            dx_pad[cell.reshape(-1)] = g.reshape(-1)                        # each cell at most once
        return self._crop(dx_pad.reshape(self._planes))                     # padding cropped

    def _windows_overlap(self) -> bool:
        """Whether a cell can lie in two windows: a stride shorter than the dilated kernel."""
        return any(s < d * (k - 1) + 1 for s, d, k in
                   zip(self.stride, self.dilation, self.kernel_size, strict=True))

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(_Pool2d):
    """``torch.nn.AvgPool2d``: the mean of every window, with torch's divisor rules."""

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding")
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        if divisor_override is not None and divisor_override == 0:
            raise ValueError("divisor must be not zero")
        self.divisor_override = divisor_override

    def _divisor(self) -> np.ndarray:
        """D(y, x): (OH, OW), the number each window's sum is divided by (torch's rules)."""
        if self.divisor_override is not None:
            return np.full(self._out, self.divisor_override)
        counts = []
        for size, out, k, s, p in zip(self._shape[2:], self._out, self.kernel_size,
                                      self.stride, self.padding, strict=True):
            start = np.arange(out) * s - p                                  # window starts
            end = np.minimum(start + k, size + p)                           # clipped to the pad
            if self.count_include_pad:
                counts.append(end - start)                                  # padding counts
            else:
                counts.append(np.minimum(end, size) - np.maximum(start, 0))  # input cells only
        return np.outer(counts[0], counts[1])                               # (OH, OW)

    def forward(self, x: np.ndarray) -> np.ndarray:
        cols = self._columns(x, (1, 1), fill=0.0)                           # (KH KW, N)
        self._denominator = self._divisor().astype(cols.dtype)              # (OH, OW), x's dtype
        sums = cols.sum(axis=0).reshape(-1, *self._out)                     # (B C, OH, OW)
        return self._output(sums / self._denominator)                       # y = sum / D

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        g = self._upstream(grad_output, self._unbatched)                    # (B, C, OH, OW)
        share = (g.reshape(-1, *self._out) / self._denominator).reshape(1, -1)  # (1, N)  g / D
        dcols = np.broadcast_to(share, (self.kernel_size[0] * self.kernel_size[1],
                                        share.shape[1]))                    # every window cell
        return self._input_gradient(dcols, (1, 1))                         # col2im, cropped

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
