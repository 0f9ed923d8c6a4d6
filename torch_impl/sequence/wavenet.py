r"""The WaveNet of the makemore lectures in PyTorch: the hierarchical character model and the
same computation as dilated causal convolutions; autograd does the backward.

    hierarchical, level l = 1 .. L (block_size = 2^L):
      x = FlattenConsecutive(2)(x)        (B, T, D) -> (B, T/2, 2D)
      x = tanh(BatchNorm1d(x Wᵀ))         statistics over dims (0, 1)
    logits = x W_outᵀ + b_out             (B, V)

    causal stack, dilation d per level:
      y[b, o, t] = Σ_c W[o, c, 0] x[b, c, t - d] + W[o, c, 1] x[b, c, t]

Conv1d is written as im2col (``Tensor.unfold``) and one matrix product per group;
``F.conv1d`` is the witness, not used here. Constructors, parameter and buffer names as the
NumPy twin's (and torch.nn's where torch has the layer).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from torch_impl.layers.activations import Tanh
from torch_impl.layers.batchnorm import BatchNorm1d
from torch_impl.layers.embedding import Embedding
from torch_impl.layers.linear import Linear
from torch_impl.layers.losses import CrossEntropyLoss
from torch_impl.vision.conv2d import check_conv_arguments


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
        return total // 2, total - total // 2
    value = single(padding)
    if value < 0:
        raise ValueError(f"negative padding is not supported, got {padding!r}")
    return value, value


def single(value: int | tuple[int]) -> int:
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


class Conv1d(nn.Module):
    """Same constructor, parameter names and layout as ``torch.nn.Conv1d`` (zero padding)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int],
                 stride: int | tuple[int] = 1, padding: str | int | tuple[int] = 0,
                 dilation: int | tuple[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        check_conv_arguments("Conv1d", in_channels, out_channels, groups, padding_mode)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = (single(kernel_size),)
        self.stride = (single(stride),)
        self.dilation = (single(dilation),)
        self.padding = padding if isinstance(padding, str) else (single(padding),)
        self.groups = groups
        self.padding_mode = padding_mode
        self._padding = resolve_padding(padding, self.kernel_size[0], self.stride[0],
                                        self.dilation[0])
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, self.kernel_size[0]))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.weight.shape[1] * self.kernel_size[0]
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # U(-bound, bound), as nn.Conv1d
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0)                                         # (1, C, L)
        x = F.pad(x, self._padding)                                    # (B, C, Lp), zeros
        (kernel,), (stride,), (dilation,) = self.kernel_size, self.stride, self.dilation
        span = dilation * (kernel - 1) + 1                             # the dilated kernel
        cols = x.unfold(2, span, stride)[..., ::dilation]              # (B, C, L_out, K)
        batch, _, out_len, _ = cols.shape
        cols = cols.permute(0, 1, 3, 2).reshape(batch, self.groups, -1, out_len)  # (B,G,C/G K,Lo)
        w = self.weight.view(self.groups, self.out_channels // self.groups, -1)  # (G, O/G, C/G K)
        y = (w @ cols).reshape(batch, self.out_channels, out_len)      # (B, O, L_out)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1)
        return y.squeeze(0) if unbatched else y


class CausalConv1d(Conv1d):
    """A Conv1d whose output t sees x[t - (K-1) d] .. x[t] only: (B, C, L) -> (B, O, L)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2,
                 dilation: int = 1, bias: bool = True) -> None:
        kernel, dil = single(kernel_size), single(dilation)
        super().__init__(in_channels, out_channels, kernel, padding=(kernel - 1) * dil,
                         dilation=dil, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[..., :x.shape[-1]]                   # (B, O, L) causal part


# --- the lecture's layers ------------------------------------------------------------------------
class FlattenConsecutive(nn.Module):
    """(B, T, C) -> (B, T/n, n C), n consecutive steps side by side; (B, C n) when T = n."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, channels = x.shape
        if steps % self.n:
            raise ValueError(f"FlattenConsecutive({self.n}) needs a length divisible by "
                             f"{self.n}, got {steps}")
        x = x.view(batch, steps // self.n, channels * self.n)          # (B, T/n, n C)
        return x.squeeze(1) if x.shape[1] == 1 else x

    def extra_repr(self) -> str:
        return f"n={self.n}"


class ChannelsLastBatchNorm1d(BatchNorm1d):
    """BatchNorm1d on (B, T, C) with statistics over dims (0, 1); on (B, C) as usual."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            return super().forward(x)                                  # (B, C)
        return super().forward(x.transpose(1, 2)).transpose(1, 2)      # (B, T, C) via (B, C, T)


def _levels(block_size: int) -> int:
    levels = int(block_size).bit_length() - 1
    if block_size < 2 or 2 ** levels != block_size:
        raise ValueError(f"block_size must be a power of two >= 2, got {block_size}")
    return levels


class WaveNet(nn.Module):
    """The hierarchical model of makemore part 5; same constructor and names as the NumPy twin."""

    def __init__(self, vocab_size: int = 27, block_size: int = 8, n_embd: int = 24,
                 n_hidden: int = 128) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.n_embd = n_embd
        self.n_hidden = n_hidden
        layers: list[nn.Module] = [Embedding(vocab_size, n_embd)]
        width = n_embd
        for _ in range(_levels(block_size)):
            layers += [FlattenConsecutive(2), Linear(2 * width, n_hidden, bias=False),
                       ChannelsLastBatchNorm1d(n_hidden), Tanh()]
            width = n_hidden
        layers.append(Linear(n_hidden, vocab_size))
        self.layers = nn.ModuleList(layers)
        with torch.no_grad():
            self.layers[-1].weight *= 0.1                              # a less confident start
        self.criterion = CrossEntropyLoss()
        self.intermediates: dict[str, torch.Tensor] = {}

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if idx.dim() != 2 or idx.shape[1] != self.block_size:
            raise ValueError(f"expected contexts of shape (B, {self.block_size}), "
                             f"got {tuple(idx.shape)}")
        x = idx
        self.intermediates = {}
        for layer in self.layers:
            x = layer(x)                                               # (B, T, C) -> .. -> (B, V)
            if isinstance(layer, Tanh):
                if x.requires_grad:
                    x.retain_grad()  # keep autograd's gradient of each level for the comparison
                self.intermediates[f"level{len(self.intermediates) + 1}"] = x
        return x if targets is None else self.criterion(x, targets)

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, block_size={self.block_size}, "
                f"n_embd={self.n_embd}, n_hidden={self.n_hidden}")


class CausalConvWaveNet(nn.Module):
    """The same tree at every position, as dilated causal convolutions: idx (B, T) -> logits
    (B, T, V), or their mean cross-entropy with targets (B, T)."""

    def __init__(self, vocab_size: int = 27, n_embd: int = 24, n_hidden: int = 128,
                 dilations: tuple[int, ...] = (1, 2, 4, 8)) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.n_embd = n_embd
        self.n_hidden = n_hidden
        self.dilations = tuple(dilations)
        layers: list[nn.Module] = [Embedding(vocab_size, n_embd)]
        width = n_embd
        for dilation in self.dilations:
            layers += [CausalConv1d(width, n_hidden, 2, dilation=dilation, bias=False),
                       BatchNorm1d(n_hidden), Tanh()]
            width = n_hidden
        layers.append(Linear(n_hidden, vocab_size))
        self.layers = nn.ModuleList(layers)
        with torch.no_grad():
            self.layers[-1].weight *= 0.1
        self.criterion = CrossEntropyLoss()

    @property
    def receptive_field(self) -> int:
        return 1 + sum(self.dilations)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if idx.dim() != 2:
            raise ValueError(f"expected token ids of shape (B, T), got {tuple(idx.shape)}")
        embedding, *body, head = self.layers
        x = embedding(idx).transpose(1, 2)                             # (B, E, T)
        for layer in body:
            x = layer(x)                                               # (B, H, T)
        logits = head(x.transpose(1, 2))                               # (B, T, V)
        if targets is None:
            return logits
        return self.criterion(logits.reshape(-1, self.vocab_size), targets.reshape(-1))

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, n_embd={self.n_embd}, n_hidden={self.n_hidden}, "
                f"dilations={self.dilations}")


# --- training ------------------------------------------------------------------------------------
def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor,
               Y: torch.Tensor) -> float:
    """One step: forward, zero the grads, autograd's backward, the optimizer's update."""
    loss = model(X, Y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, batch: int = 4096) -> float:
    """The mean cross-entropy over a whole split in eval mode (running statistics)."""
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(X), batch):
        total += model(X[start:start + batch], Y[start:start + batch]).item() \
            * len(X[start:start + batch])
    model.train(was_training)
    return total / max(len(X), 1)
