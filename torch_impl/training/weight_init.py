r"""Weight initialization in PyTorch: the schemes of ``torch.nn.init``, written out.

    fan_in = in * r,  fan_out = out * r            weight (out, in, k1, ...), r = k1 k2 ...
    gain: 1 (linear, conv*d, sigmoid), 5/3 (tanh), sqrt(2) (relu), sqrt(2/(1+a^2)) (leaky_relu),
          3/4 (selu)
    xavier:  std = gain sqrt(2 / (fan_in + fan_out))     kaiming:  std = gain / sqrt(fan)
    uniform: U(-sqrt(3) std, sqrt(3) std)                normal:   N(0, std^2)
    nn.Linear / nn.Conv2d default: kaiming_uniform_(a=sqrt(5)) weight, U(+-1/sqrt(fan_in)) bias

Each function fills its tensor in place under ``torch.no_grad()`` (initialization is not part
of the graph) with ``Tensor.uniform_`` / ``Tensor.normal_``, the same draws ``torch.nn.init``
makes: from the same seed the results are bitwise those of ``torch.nn.init``.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

_LINEAR_GAIN = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")
SCHEMES = ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "default")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor by which ``nonlinearity`` must be undone: Var(w) = gain^2 / fan."""
    if nonlinearity in _LINEAR_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1.0 + slope * slope))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: torch.Tensor) -> tuple[int, int]:
    if tensor.dim() < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than "
                         "2 dimensions")
    receptive_field = math.prod(tensor.shape[2:])     # 1 for a matrix
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor: torch.Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


@torch.no_grad()
def xavier_uniform_(tensor: torch.Tensor, gain: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return tensor.uniform_(-bound, bound, generator=generator)


@torch.no_grad()
def xavier_normal_(tensor: torch.Tensor, gain: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return tensor.normal_(0.0, std, generator=generator)


@torch.no_grad()
def kaiming_uniform_(tensor: torch.Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    if tensor.numel() == 0:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return tensor.uniform_(-bound, bound, generator=generator)


@torch.no_grad()
def kaiming_normal_(tensor: torch.Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    generator: torch.Generator | None = None) -> torch.Tensor:
    if tensor.numel() == 0:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))
    return tensor.normal_(0.0, std, generator=generator)


@torch.no_grad()
def default_init_(weight: torch.Tensor, bias: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> None:
    """``nn.Linear.reset_parameters`` / ``nn.Conv2d.reset_parameters``."""
    kaiming_uniform_(weight, a=math.sqrt(5.0), generator=generator)
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        bias.uniform_(-bound, bound, generator=generator)


_FILL = {"xavier_uniform": xavier_uniform_, "xavier_normal": xavier_normal_,
         "kaiming_uniform": kaiming_uniform_, "kaiming_normal": kaiming_normal_}


class Initialized(nn.Module):
    """A ``weight`` of ``shape`` (and a ``bias`` of shape[0] with ``bias=True``, scheme
    "default") filled by one scheme at construction; forward returns the parameters."""

    def __init__(self, shape: tuple[int, ...], scheme: str, bias: bool = False,
                 **options: Any) -> None:
        super().__init__()
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
        if bias and scheme != "default":
            raise ValueError("bias=True is for scheme 'default' (nn.Linear / nn.Conv2d); the "
                             "nn.init schemes fill one weight")
        self.shape = tuple(shape)
        self.scheme = scheme
        self.options = dict(options)
        self.weight = nn.Parameter(torch.empty(self.shape))
        self.bias = nn.Parameter(torch.empty(self.shape[:1])) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.scheme == "default":
            default_init_(self.weight, self.bias, **self.options)
        else:
            _FILL[self.scheme](self.weight, **self.options)

    def forward(self) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.weight if self.bias is None else (self.weight, self.bias)

    def extra_repr(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"shape={self.shape}, scheme={self.scheme!r}, bias={self.bias is not None}{options}"
