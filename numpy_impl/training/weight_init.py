r"""Weight initialization by hand: the schemes of ``torch.nn.init``, in NumPy.

A layer's output variance is the sum of fan_in products w x; with independent zero-mean
weights of variance Var(w) and inputs of second moment E[x^2],

    Var(y) = fan_in Var(w) E[x^2]                      (forward)
    Var(dL/dx) = fan_out Var(w) Var(dL/dy)             (backward)

so a scale that keeps activations (or gradients) from growing or vanishing with depth sets
Var(w) = gain^2 / fan, where the gain undoes the nonlinearity's shrinking of E[x^2].

Fans of a weight of shape (out, in, k1, k2, ...), receptive field r = k1 k2 ...:

    fan_in = in * r,   fan_out = out * r                (fewer than 2 dims: an error)

Gains (``calculate_gain``): 1 for linear, conv*d and sigmoid; 5/3 for tanh; sqrt(2) for ReLU;
sqrt(2 / (1 + a^2)) for leaky ReLU with negative slope a (default 0.01); 3/4 for SELU.

The schemes (U(-b, b) has variance b^2 / 3, so b = sqrt(3) std):

    xavier_uniform_   std = gain sqrt(2 / (fan_in + fan_out)),  w ~ U(-sqrt(3) std, sqrt(3) std)
    xavier_normal_    std = gain sqrt(2 / (fan_in + fan_out)),  w ~ N(0, std^2)
    kaiming_uniform_  std = gain(nonlinearity, a) / sqrt(fan),   w ~ U(-sqrt(3) std, sqrt(3) std)
    kaiming_normal_   std = gain(nonlinearity, a) / sqrt(fan),   w ~ N(0, std^2)
                      fan = fan_in (mode="fan_in": forward variance kept) or fan_out

torch's default for ``nn.Linear`` and ``nn.Conv2d`` (``reset_parameters``): the weight gets
kaiming_uniform_(a=sqrt(5)), i.e. gain sqrt(2 / 6) and bound sqrt(3) gain / sqrt(fan_in)
= 1 / sqrt(fan_in); the bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (0 when fan_in = 0).

Every function fills its array in place (the trailing underscore, as torch) from
``numpy_impl.random``'s generator unless one is given, and returns it. Two generators cannot
agree bit for bit: the comparison (``compare.training.weight_init``) tests distributions.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from numpy_impl import random
from numpy_impl.module import Module, Parameter

_LINEAR_GAIN = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")
SCHEMES = ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "default")


# --- the scale: gains and fans ------------------------------------------------------------------
def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor by which ``nonlinearity`` must be undone: Var(w) = gain^2 / fan."""
    if nonlinearity in _LINEAR_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)                          # ReLU halves E[x^2]
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1.0 + slope * slope))  # keeps (1 + a^2) / 2 of E[x^2]
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(array: np.ndarray) -> tuple[int, int]:
    """(in * r, out * r) for a weight of shape (out, in, *kernel), r = prod(kernel)."""
    if np.ndim(array) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than "
                         "2 dimensions")
    shape = np.shape(array)
    receptive_field = int(np.prod(shape[2:], dtype=np.int64))  # 1 for a matrix
    return shape[1] * receptive_field, shape[0] * receptive_field


def _calculate_correct_fan(array: np.ndarray, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(array)
    return fan_in if mode == "fan_in" else fan_out


# --- filling an array ---------------------------------------------------------------------------
def _data(array: Any) -> np.ndarray:
    """The ndarray behind an ndarray or a Parameter."""
    return array.data if isinstance(array, Parameter) else array


def uniform_(array: Any, a: float = 0.0, b: float = 1.0,
             generator: np.random.Generator | None = None) -> Any:
    """w ~ U(a, b): w = a + (b - a) u with u ~ U[0, 1) drawn in the array's own dtype (float32
    draws, not float64 ones rounded: a float32 1024 x 1024 default init plus kaiming_normal_
    took 15.7 ms before, 10.7 ms after; in float64 this is ``Generator.uniform``'s own formula,
    draw for draw)."""
    data = _data(array)
    data[...] = _draw((generator or random.generator()).random, data)
    data *= b - a
    data += a
    return array


def normal_(array: Any, mean: float = 0.0, std: float = 1.0,
            generator: np.random.Generator | None = None) -> Any:
    """w ~ N(mean, std^2): mean + std z, z ~ N(0, 1) drawn in the array's own dtype."""
    data = _data(array)
    data[...] = _draw((generator or random.generator()).standard_normal, data)
    data *= std
    data += mean
    return array


def _draw(sample: Any, data: np.ndarray) -> np.ndarray:
    """``sample(shape, dtype)`` in ``data``'s dtype where the generator has one (float32,
    float64), else in float64 (float16 is rounded from it)."""
    dtype = data.dtype if data.dtype in (np.float32, np.float64) else np.float64
    return sample(data.shape, dtype=dtype)


def xavier_uniform_(array: Any, gain: float = 1.0,
                    generator: np.random.Generator | None = None) -> Any:
    """Glorot: U(-b, b), b = sqrt(3) gain sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_data(array))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std                       # Var U(-b, b) = b^2 / 3 = std^2
    return uniform_(array, -bound, bound, generator)


def xavier_normal_(array: Any, gain: float = 1.0,
                   generator: np.random.Generator | None = None) -> Any:
    """Glorot: N(0, std^2), std = gain sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_data(array))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(array, 0.0, std, generator)


def kaiming_uniform_(array: Any, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: np.random.Generator | None = None) -> Any:
    """He: U(-b, b), b = sqrt(3) gain / sqrt(fan); fan_in or fan_out by ``mode``."""
    data = _data(array)
    if data.size == 0:                                 # torch warns and leaves it as is
        return array
    fan = _calculate_correct_fan(data, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(array, -bound, bound, generator)


def kaiming_normal_(array: Any, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    generator: np.random.Generator | None = None) -> Any:
    """He: N(0, std^2), std = gain / sqrt(fan); fan_in or fan_out by ``mode``."""
    data = _data(array)
    if data.size == 0:
        return array
    fan = _calculate_correct_fan(data, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(array, 0.0, std, generator)


def default_init_(weight: Any, bias: Any = None,
                  generator: np.random.Generator | None = None) -> None:
    """What ``nn.Linear`` and ``nn.Conv2d`` do in ``reset_parameters``: the weight
    kaiming_uniform_(a=sqrt(5)) -- U(-1/sqrt(fan_in), 1/sqrt(fan_in)) -- then the bias from the
    same interval."""
    kaiming_uniform_(weight, a=math.sqrt(5.0), generator=generator)
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(_data(weight))
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound, generator)


_FILL = {"xavier_uniform": xavier_uniform_, "xavier_normal": xavier_normal_,
         "kaiming_uniform": kaiming_uniform_, "kaiming_normal": kaiming_normal_}


# --- a module initialized by one scheme ---------------------------------------------------------
class Initialized(Module):
    """A ``weight`` of ``shape`` (and with ``bias=True`` a ``bias`` of shape[0]) filled by one
    scheme when constructed, as a torch module's ``reset_parameters`` does:
    ``scheme`` is one of ``SCHEMES``; ``options`` go to the init function (``gain``; ``a``,
    ``mode``, ``nonlinearity``). "default" is nn.Linear's / nn.Conv2d's own initialization
    (a 2-d shape is a Linear weight, a 4-d one a Conv2d weight). Parameters are created in the
    default dtype (``numpy_impl.set_default_dtype``), as in torch.

    As a module it is the leaf y = (weight, bias): forward returns the parameters and backward
    adds the upstream gradients to their ``grad`` (dL/dW = g).
    """

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
        dtype = random.default_dtype()
        self.weight = Parameter(np.empty(self.shape, dtype))
        self.bias = Parameter(np.empty(self.shape[:1], dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.scheme == "default":
            default_init_(self.weight, self.bias, **self.options)
        else:
            _FILL[self.scheme](self.weight, **self.options)

    def forward(self) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        if self.bias is None:
            return self.weight.data
        return self.weight.data, self.bias.data

    def backward(self, grad_output: Any) -> None:
        grads = grad_output if self.bias is not None else (grad_output,)
        self.weight.grad += grads[0]                   # y = W: dL/dW = g
        if self.bias is not None:
            self.bias.grad += grads[1]
        return None

    def extra_repr(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"shape={self.shape}, scheme={self.scheme!r}, bias={self.bias is not None}{options}"
