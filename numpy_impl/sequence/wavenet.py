r"""The WaveNet of the makemore lectures: a hierarchical character model, and the same
computation as a stack of dilated causal convolutions -- forward and backward by hand.

**The hierarchical model** (makemore part 5). Read block_size = 2^L characters and fuse them
two at a time, L times, instead of squashing all of them into one hidden layer at once:

    e      = C[idx]                                   (B, 8, E)    embedding, block_size 8
    level l = 1 .. L:
      x    = FlattenConsecutive(2)(x)                 (B, T/2, 2D) pairs side by side
      a    = x Wᵀ                                     (B, T/2, H)  Linear, no bias
      z    = BatchNorm1d(a)                           (B, T/2, H)  statistics over dims (0, 1)
      x    = tanh(z)                                  (B, T/2, H)
    logits = x W_outᵀ + b_out                         (B, V)       the last level has T = 1

FlattenConsecutive(n) is a reshape, (B, T, C) -> (B, T/n, n C): row (b, i) holds
x[b, n i], ..., x[b, n i + n - 1] side by side (earliest first), and a length-1 time axis is
dropped, as the lecture does. Its backward is the inverse reshape. BatchNorm1d on (B, T, C)
normalizes each channel over the B T values of dims (0, 1): the lecture's fix (its first
version reduced over dim 0 only, a separate statistic per position). It is torch.nn.BatchNorm1d
on the transposed (B, C, T) -- reused from ``numpy_impl.layers.batchnorm`` --, so it normalizes
with the *biased* batch variance, where the lecture's hand-written layer used the unbiased one.

Backward, level by level from the top, each step a layer's own backward:

    dx   = dlogits W_out                              head (dW_out = dlogitsᵀ x, db_out = Σ)
    dz   = dx ⊙ (1 - x²)                              tanh
    da   = BatchNorm1d backward over dims (0, 1)      (and dγ, dβ)
    dx   = da W,   dW = Σ_{b,t} daᵀ x                 Linear
    dx   = reshape back to (B, T, D)                  FlattenConsecutive
    dC[v] += de[b, t] for every idx[b, t] = v         embedding scatter-add

**The dilated causal convolution stack** (WaveNet, van den Oord et al. 2016) computes the same
tree for *every* position at once. Level l fuses the state at t with the one 2^{l-1} steps
back -- a kernel-2 convolution with dilation d = 2^{l-1}, padded on the left only (causal):

    y[b, o, t] = Σ_c W[o, c, 0] x[b, c, t - d] + W[o, c, 1] x[b, c, t]      (x = 0 before t = 0)

With weights shared (W[:, :, 0] = the Linear's first D columns, W[:, :, 1] = the rest) and the
same normalization, its output at position t equals the hierarchical model's output for the
window of 2^L characters ending at t: both see exactly that window, the receptive field
1 + Σ_l d_l = 2^L. (In training the batch statistics differ: the stack normalizes over every
position.)

**Conv1d**, as ``torch.nn.Conv1d`` (stride s, dilation d, zero padding, G groups, bias):

    y[b, o, t] = bias[o] + Σ_{c, k} W[o, c, k] x_pad[b, g C/G + c, t s + k d]   (o in group g)
    L_out = floor((L + pad_left + pad_right - d (K - 1) - 1) / s) + 1

through im2col (``numpy_impl.im2col``, on a (B, C, 1, L) view: a 1-D convolution is a 2-D one of
height 1) and one matrix product per group each way:

    cols_g = im2col(x_pad)[rows of group g]           (C/G K, B L_out)
    Y_g    = W_g cols_g + bias_g                      W_g: (O/G, C/G K)
    dW_g   = G_g cols_gᵀ,   dcols_g = W_gᵀ G_g,   dx = col2im(dcols), padding cropped
    dbias  = Σ_{b, t} dy

A causal convolution pads (K - 1) d zeros on both sides, as nn.Conv1d can, and keeps the first
L outputs: output t then reads x[t - (K - 1) d] .. x[t]. Its backward pads dy with zeros at the
end (the dropped outputs get no gradient).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from numpy_impl import random
from numpy_impl.im2col import check_conv_arguments, col2im, im2col, output_size
from numpy_impl.layers.activations import Tanh
from numpy_impl.layers.batchnorm import BatchNorm1d
from numpy_impl.layers.embedding import Embedding
from numpy_impl.layers.linear import Linear
from numpy_impl.layers.losses import CrossEntropyLoss
from numpy_impl.module import Module, ModuleList, Parameter


# --- Conv1d ------------------------------------------------------------------------------------
def resolve_padding(padding: str | int | tuple[int], kernel: int, stride: int,
                    dilation: int) -> tuple[int, int]:
    """torch's padding argument as explicit (left, right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding != "same":
            raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                             "{'valid', 'same'}")
        if stride != 1:
            raise ValueError("padding='same' is not supported for strided convolutions")
        total = dilation * (kernel - 1)
        return total // 2, total - total // 2          # the odd one out on the right, as torch
    value = single(padding, "padding")
    if value < 0:
        raise ValueError(f"negative padding is not supported, got {padding!r}")
    return value, value


def single(value: int | tuple[int], name: str) -> int:
    """An int or a 1-tuple of an int, as torch's ``_single`` accepts."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"{name} must be an int or a 1-tuple of an int, got {value!r}")


def conv1d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int,
                   padding: tuple[int, int], dilation: int, groups: int):
    """y = conv1d(x, W) + b for x (B, C, L); returns (y, cache)."""
    batch, channels, length = x.shape
    out_channels, group_channels, kernel = weight.shape
    if channels != group_channels * groups:
        raise ValueError(f"Given groups={groups}, weight of size {tuple(weight.shape)}, expected "
                         f"input{tuple(x.shape)} to have {group_channels * groups} channels, "
                         f"but got {channels} channels instead")
    left, right = padding
    out_len = output_size(length, kernel, stride, left, right, dilation)
    if out_len < 1:
        raise ValueError(f"Calculated padded input size per channel: ({length + left + right})."
                         f" Kernel size: ({dilation * (kernel - 1) + 1}). Kernel size can't be "
                         "greater than actual input size")
    x_pad = np.pad(x, ((0, 0), (0, 0), (left, right)))[:, :, None, :]   # (B, C, 1, Lp)
    geometry = ((1, kernel), (1, stride), (1, dilation), (1, out_len))
    cols = im2col(x_pad, *geometry)                                     # (C K, B L_out)
    cols = cols.reshape(groups, -1, cols.shape[1])                      # (G, C/G K, B L_out)
    w_mat = weight.reshape(groups, out_channels // groups, -1)          # (G, O/G, C/G K)
    y = np.matmul(w_mat, cols)                                          # (G, O/G, B L_out)
    y = np.ascontiguousarray(y.reshape(out_channels, batch, out_len).transpose(1, 0, 2))
    if bias is not None:
        y += bias[:, None]                                              # (B, O, L_out) + b[o]
    return y, (cols, w_mat, x_pad.shape, geometry, padding, bias is not None)


def conv1d_backward(dy: np.ndarray, cache):
    """Returns (dx, dW, db) for dy = dL/dy (B, O, L_out); db is None without a bias."""
    cols, w_mat, padded_shape, geometry, (left, right), has_bias = cache
    groups, group_out, _ = w_mat.shape
    kernel = geometry[0][1]
    g_mat = dy.transpose(1, 0, 2).reshape(groups, group_out, -1)        # (G, O/G, B L_out)
    dbias = dy.sum(axis=(0, 2)) if has_bias else None                   # (O,) b at every t
    dweight = np.matmul(g_mat, cols.transpose(0, 2, 1))                 # (G, O/G, C/G K) G colsᵀ
    dweight = dweight.reshape(groups * group_out, -1, kernel)           # (O, C/G, K)
    dcols = np.matmul(w_mat.transpose(0, 2, 1), g_mat)                  # (G, C/G K, B L_out) WᵀG
    dx_pad = col2im(dcols.reshape(-1, dcols.shape[2]), padded_shape, *geometry)  # (B, C, 1, Lp)
    dx = dx_pad[:, :, 0, left:padded_shape[3] - right]                  # (B, C, L) crop padding
    return dx, dweight, dbias


class Conv1d(Module):
    """``torch.nn.Conv1d``: y = W * x + b over sequences (B, C, L) or (C, L)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int],
                 stride: int | tuple[int] = 1, padding: str | int | tuple[int] = 0,
                 dilation: int | tuple[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        check_conv_arguments("Conv1d", in_channels, out_channels, groups, padding_mode)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = (single(kernel_size, "kernel_size"),)
        self.stride = (single(stride, "stride"),)
        self.dilation = (single(dilation, "dilation"),)
        self.padding = padding if isinstance(padding, str) else (single(padding, "padding"),)
        self.groups = groups
        self.padding_mode = padding_mode
        self._padding = resolve_padding(padding, self.kernel_size[0], self.stride[0],
                                        self.dilation[0])
        fan_in = in_channels // groups * self.kernel_size[0]
        bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0           # as torch's init
        self.weight = Parameter(random.uniform(
            -bound, bound, (out_channels, in_channels // groups, self.kernel_size[0])))
        self.bias = Parameter(random.uniform(-bound, bound, (out_channels,))) if bias else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim not in (2, 3):
            raise ValueError(f"Conv1d expects a 2-D (C, L) or 3-D (B, C, L) input, got shape "
                             f"{tuple(x.shape)}")
        self._unbatched = x.ndim == 2
        x = x[None] if self._unbatched else x                           # (B, C, L)
        y, self._cache = conv1d_forward(
            x, self.weight.data, None if self.bias is None else self.bias.data,
            self.stride[0], self._padding, self.dilation[0], self.groups)
        return y[0] if self._unbatched else y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dy = grad_output[None] if self._unbatched else grad_output      # (B, O, L_out)
        dx, dweight, dbias = conv1d_backward(dy, self._cache)
        self.weight.grad += dweight                                     # accumulate, as autograd
        if self.bias is not None:
            self.bias.grad += dbias
        return dx[0] if self._unbatched else dx

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0,):
            text += f", padding={self.padding!r}"
        if self.dilation != (1,):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class CausalConv1d(Conv1d):
    """A Conv1d whose output t sees x[t - (K-1) d] .. x[t] only: (B, C, L) -> (B, O, L)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2,
                 dilation: int = 1, bias: bool = True) -> None:
        kernel, dil = single(kernel_size, "kernel_size"), single(dilation, "dilation")
        super().__init__(in_channels, out_channels, kernel, padding=(kernel - 1) * dil,
                         dilation=dil, bias=bias)

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = super().forward(x)                                          # (B, O, L + (K-1) d)
        self._length = np.shape(x)[-1]
        return y[..., :self._length]                                    # (B, O, L) causal part

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dropped = self._padding[1]                                      # the last (K-1) d outputs
        pad = [(0, 0)] * (np.ndim(grad_output) - 1) + [(0, dropped)]
        return super().backward(np.pad(grad_output, pad))               # they get no gradient


# --- the lecture's layers ------------------------------------------------------------------------
class FlattenConsecutive(Module):
    """(B, T, C) -> (B, T/n, n C), n consecutive steps side by side; (B, C n) when T = n."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: np.ndarray) -> np.ndarray:
        batch, steps, channels = x.shape
        if steps % self.n:
            raise ValueError(f"FlattenConsecutive({self.n}) needs a length divisible by "
                             f"{self.n}, got {steps}")
        self._shape = x.shape
        x = x.reshape(batch, steps // self.n, channels * self.n)        # (B, T/n, n C)
        return x[:, 0] if x.shape[1] == 1 else x                        # drop a length-1 axis

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output.reshape(self._shape)                         # (B, T, C) undo reshape

    def extra_repr(self) -> str:
        return f"n={self.n}"


class ChannelsLastBatchNorm1d(BatchNorm1d):
    """BatchNorm1d on (B, T, C) with statistics over dims (0, 1), as the lecture's layer; on
    (B, C) as usual. torch.nn.BatchNorm1d on the transposed (B, C, T): same names, same state."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        if np.ndim(x) != 3:
            return super().forward(x)                                   # (B, C)
        return super().forward(x.swapaxes(1, 2)).swapaxes(1, 2)         # (B, T, C) via (B, C, T)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        if np.ndim(grad_output) != 3:
            return super().backward(grad_output)
        return super().backward(grad_output.swapaxes(1, 2)).swapaxes(1, 2)


def _levels(block_size: int) -> int:
    """L with 2^L = block_size: the number of pair-fusing levels."""
    levels = int(block_size).bit_length() - 1
    if block_size < 2 or 2 ** levels != block_size:
        raise ValueError(f"block_size must be a power of two >= 2, got {block_size}")
    return levels


class WaveNet(Module):
    """The hierarchical model of makemore part 5: ``layers`` is the lecture's list

        Embedding, [FlattenConsecutive(2), Linear(no bias), BatchNorm1d, Tanh] x L, Linear

    ``forward(idx, targets=None)``: idx (B, block_size) -> logits (B, V), or the mean
    cross-entropy (0-d) with targets (B,). The head's weight starts scaled by 0.1 (the lecture's
    "less confident" last layer)."""

    def __init__(self, vocab_size: int = 27, block_size: int = 8, n_embd: int = 24,
                 n_hidden: int = 128) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.n_embd = n_embd
        self.n_hidden = n_hidden
        layers: list[Module] = [Embedding(vocab_size, n_embd)]
        width = n_embd
        for _ in range(_levels(block_size)):
            layers += [FlattenConsecutive(2), Linear(2 * width, n_hidden, bias=False),
                       ChannelsLastBatchNorm1d(n_hidden), Tanh()]
            width = n_hidden
        layers.append(Linear(n_hidden, vocab_size))
        self.layers = ModuleList(layers)
        self.layers[-1].weight.data *= 0.1
        self.criterion = CrossEntropyLoss()
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def forward(self, idx: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.shape[1] != self.block_size:
            raise ValueError(f"expected contexts of shape (B, {self.block_size}), "
                             f"got {idx.shape}")
        x = idx
        self.intermediates = {}
        for layer in self.layers:
            x = layer(x)                                    # (B, T, C) -> ... -> (B, V)
            if isinstance(layer, Tanh):
                self.intermediates[f"level{len(self.intermediates) + 1}"] = x
        self._with_loss = targets is not None
        return self.criterion(x, np.asarray(targets)) if self._with_loss else x

    def backward(self, grad_output: np.ndarray) -> None:
        grad = self.criterion.backward(grad_output) if self._with_loss else grad_output  # (B, V)
        level = len(self.intermediates)
        self.intermediate_grads = {}
        for layer in reversed(self.layers):                 # each layer's own chain-rule step
            if isinstance(layer, Tanh):
                self.intermediate_grads[f"level{level}"] = grad  # dL/d(level output)
                level -= 1
            grad = layer.backward(grad)
        return None                                         # token ids: no gradient

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, block_size={self.block_size}, "
                f"n_embd={self.n_embd}, n_hidden={self.n_hidden}")


class CausalConvWaveNet(Module):
    """The same tree at every position, as dilated causal convolutions: ``layers`` is

        Embedding, [CausalConv1d(k=2, dilation d, no bias), BatchNorm1d, Tanh] per d, Linear

    ``forward(idx, targets=None)``: idx (B, T) -> logits (B, T, V) for the next character after
    every position, or their mean cross-entropy with targets (B, T)."""

    def __init__(self, vocab_size: int = 27, n_embd: int = 24, n_hidden: int = 128,
                 dilations: tuple[int, ...] = (1, 2, 4, 8)) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.n_embd = n_embd
        self.n_hidden = n_hidden
        self.dilations = tuple(dilations)
        layers: list[Module] = [Embedding(vocab_size, n_embd)]
        width = n_embd
        for dilation in self.dilations:
            layers += [CausalConv1d(width, n_hidden, 2, dilation=dilation, bias=False),
                       BatchNorm1d(n_hidden), Tanh()]
            width = n_hidden
        layers.append(Linear(n_hidden, vocab_size))
        self.layers = ModuleList(layers)
        self.layers[-1].weight.data *= 0.1
        self.criterion = CrossEntropyLoss()

    @property
    def receptive_field(self) -> int:
        return 1 + sum(self.dilations)                      # kernel 2: each level adds d

    def forward(self, idx: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
        idx = np.asarray(idx)
        if idx.ndim != 2:
            raise ValueError(f"expected token ids of shape (B, T), got {idx.shape}")
        embedding, *body, head = self.layers
        x = embedding(idx).swapaxes(1, 2)                   # (B, E, T) channels first
        for layer in body:
            x = layer(x)                                    # (B, H, T)
        logits = head(x.swapaxes(1, 2))                     # (B, T, V)
        self._shape, self._with_loss = logits.shape, targets is not None
        if targets is None:
            return logits
        return self.criterion(logits.reshape(-1, self.vocab_size),
                              np.asarray(targets).reshape(-1))  # mean over B T positions

    def backward(self, grad_output: np.ndarray) -> None:
        embedding, *body, head = self.layers
        dlogits = (self.criterion.backward(grad_output).reshape(self._shape)
                   if self._with_loss else grad_output)     # (B, T, V)
        grad = head.backward(dlogits).swapaxes(1, 2)        # (B, H, T)
        for layer in reversed(body):                        # each layer's own chain-rule step
            grad = layer.backward(grad)
        embedding.backward(grad.swapaxes(1, 2))             # (B, T, E) scatter-add into C
        return None

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, n_embd={self.n_embd}, n_hidden={self.n_hidden}, "
                f"dilations={self.dilations}")


def causal_conv_state(hierarchical: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A ``WaveNet`` state_dict as the equivalent ``CausalConvWaveNet`` one (dilations 1, 2,
    .., 2^{L-1}): level l's Linear weight (H, 2D) = [W_early | W_late] becomes the kernel
    (H, D, 2) with tap 0 = W_early (x[t - d]) and tap 1 = W_late (x[t])."""
    state = {k: np.asarray(v) for k, v in hierarchical.items()}
    out = {"layers.0.weight": state["layers.0.weight"]}
    level = 0
    while f"layers.{1 + 4 * level + 1}.weight" in state:
        linear, norm = 1 + 4 * level + 1, 1 + 4 * level + 2
        weight = state[f"layers.{linear}.weight"]                           # (H, 2D)
        out[f"layers.{1 + 3 * level}.weight"] = (
            weight.reshape(weight.shape[0], 2, -1).transpose(0, 2, 1).copy())  # (H, D, 2)
        for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            if f"layers.{norm}.{key}" in state:
                out[f"layers.{1 + 3 * level + 1}.{key}"] = state[f"layers.{norm}.{key}"]
        level += 1
    head = 1 + 4 * level
    out[f"layers.{1 + 3 * level}.weight"] = state[f"layers.{head}.weight"]
    out[f"layers.{1 + 3 * level}.bias"] = state[f"layers.{head}.bias"]
    return out


# --- training ------------------------------------------------------------------------------------
def train_step(model: Module, optimizer: Any, X: np.ndarray, Y: np.ndarray) -> float:
    """One step on the batch (X, Y): forward, zero the grads, backward, update; the loss."""
    loss = model(X, Y)                                      # ()
    optimizer.zero_grad()
    model.backward(np.ones((), dtype=loss.dtype))           # dL/dL = 1
    optimizer.step()
    return float(loss)


def evaluate(model: Module, X: np.ndarray, Y: np.ndarray, batch: int = 4096) -> float:
    """The mean cross-entropy over a whole split in eval mode (running statistics)."""
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(X), batch):
        total += float(model(X[start:start + batch], Y[start:start + batch])) \
            * len(X[start:start + batch])
    model.train(was_training)
    return total / max(len(X), 1)
