r"""im2col and col2im: convolution and pooling as matrix products, and their adjoint.

A 2-D window operation (convolution, max or average pooling) reads, for every output pixel
(y, x), the kernel-sized patch of the padded input under it. Stride s and dilation d say where:

    patch[c, i, j](y, x) = x_pad[c, y s + i d, x s + j d]     i < KH, j < KW

**im2col** lays every patch out as one column of a matrix:

    cols[(c, i, j), (b, y, x)] = x_pad[b, c, y s + i d, x s + j d]     (C KH KW, B OH OW)

so that a convolution is one matrix product, ``W.reshape(O, C KH KW) @ cols``, and a pooling is
a reduction over the rows. ``windows`` is the zero-copy view underneath
(``numpy.lib.stride_tricks.sliding_window_view``): every patch, no data moved; ``im2col``
copies it once into the contiguous matrix that BLAS wants.

**col2im** is the adjoint (the transpose) of im2col, and therefore its backward: im2col
*copies* each input pixel into every column whose patch covers it, so the gradient of the
pixel is the *sum* of the gradients of all those copies:

    dx_pad[b, c, h, w] = sum over (i, j, y, x) with y s + i d = h and x s + j d = w
                         of dcols[(c, i, j), (b, y, x)]

Patches overlap when s < (K - 1) d + 1, so several entries land on one pixel. The scatter is
``np.add.at`` on a flat index array -- vectorized, with no loop over batch, pixels or kernel
offsets: ``read_positions`` is that index (where im2col read each entry from), computed once
per geometry and cached. (``np.add.at``, unlike ``dx[index] += v``, adds every repeated index.)
On a 1-d array with a 1-d index, as here, ``np.add.at`` takes NumPy's fast path (NumPy 1.25
on): for the benchmark's Conv2d (3.1 million entries onto 0.4 million pixels) it measured
2.3 ms in float32 and 2.6 ms in float64, against 11.5 and 5.1 ms for ``np.bincount`` with
weights (which also sums in float64 only, so float32 would need a cast back).
The other vectorized form of this backward is a transposed convolution (the zero-stuffed
gradient convolved with the flipped kernel); it needs a second im2col copy, of the gradient,
and for stride s works s^2 times over on the stuffed zeros. At the benchmark's shape
(``dualgrad bench conv2d``), matmul + scatter measured as fast as the transposed convolution
in float32 and about three times faster in float64, and the scatter alone as fast as a Python
loop over the KH KW kernel offsets.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Pair = tuple[int, int]
Pad4 = tuple[int, int, int, int]  # (top, bottom, left, right)


def pair(value: int | tuple[int, ...], name: str) -> Pair:
    """An int or a pair of ints as (height, width), as torch's ``_pair`` does."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


def output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int,
                dilation: int = 1) -> int:
    """Number of window positions along one axis: floor((N + pads - d (K-1) - 1) / s) + 1."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def pad2d(x: np.ndarray, padding: Pad4, value: float = 0.0) -> np.ndarray:
    """x (B, C, H, W) padded with ``value`` by (top, bottom, left, right); no copy when zero."""
    top, bottom, left, right = padding
    if top == bottom == left == right == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def windows(x_pad: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair,
            out_size: Pair) -> np.ndarray:
    """Every patch as a zero-copy view: (B, C, OH, OW, KH, KW), patch[..., y, x, i, j] =
    x_pad[..., y s + i d, x s + j d]."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)          # the dilated kernel's extent
    view = sliding_window_view(x_pad, span, axis=(2, 3))   # (B, C, Hp-.., Wp-.., span_h, span_w)
    return view[:, :, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw, ::dh, ::dw]


def im2col(x_pad: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair,
           out_size: Pair) -> np.ndarray:
    """cols[(c, i, j), (b, y, x)] = x_pad[b, c, y s + i d, x s + j d]: (C KH KW, B OH OW),
    contiguous (the one copy; rows vary slowest by channel, so groups split it in place)."""
    batch, channels = x_pad.shape[:2]
    patches = windows(x_pad, kernel, stride, dilation, out_size)   # (B, C, OH, OW, KH, KW)
    cols = np.ascontiguousarray(patches.transpose(1, 4, 5, 0, 2, 3))  # (C, KH, KW, B, OH, OW)
    return cols.reshape(channels * kernel[0] * kernel[1], batch * out_size[0] * out_size[1])


@lru_cache(maxsize=16)
def read_positions(padded_shape: tuple[int, int, int, int], kernel: Pair, stride: Pair,
                   dilation: Pair, out_size: Pair) -> np.ndarray:
    """For each entry of ``im2col``'s matrix (raveled), the flat index into x_pad it was read
    from: (C KH KW B OH OW,). Cached per geometry: a training loop reuses one shape."""
    batch, channels, height, width = padded_shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    rows = np.arange(kh)[:, None] * dh + np.arange(oh)[None, :] * sh      # (KH, OH)  i d + y s
    columns = np.arange(kw)[:, None] * dw + np.arange(ow)[None, :] * sw   # (KW, OW)  j d + x s
    c = np.arange(channels).reshape(channels, 1, 1, 1, 1, 1)
    i_y = rows.reshape(1, kh, 1, 1, oh, 1)
    j_x = columns.reshape(1, 1, kw, 1, 1, ow)
    b = np.arange(batch).reshape(1, 1, 1, batch, 1, 1)
    index = ((b * channels + c) * height + i_y) * width + j_x             # (C, KH, KW, B, OH, OW)
    index = index.ravel()
    index.flags.writeable = False                                         # shared by the cache
    return index


def col2im(cols: np.ndarray, padded_shape: tuple[int, int, int, int], kernel: Pair,
           stride: Pair, dilation: Pair, out_size: Pair) -> np.ndarray:
    """The adjoint of ``im2col``: sum every column entry back onto the pixel it was read
    from. cols (C KH KW, B OH OW) -> (B, C, Hp, Wp), in cols' dtype."""
    index = read_positions(tuple(padded_shape), kernel, stride, dilation, out_size)
    dx_pad = np.zeros(int(np.prod(padded_shape)), dtype=cols.dtype)
    np.add.at(dx_pad, index, np.ascontiguousarray(cols).ravel())   # repeated indices add up
    return dx_pad.reshape(padded_shape)


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
