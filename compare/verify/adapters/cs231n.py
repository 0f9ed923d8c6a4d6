"""CS231n-style function pairs, recognised by name and wrapped as a concept's NumPy twin.

The assignments write every layer as two functions::

    out, cache = affine_forward(x, w, b)             # w of shape (D, M): torch's weight.T
    dx, dw, db = affine_backward(dout, cache)

with the layer's settings in a dict (``bn_param``, ``ln_param``, ``conv_param``,
``pool_param``, ``dropout_param``) and the loss as one function ``softmax_loss(x, y) ->
(loss, dx)``. ``wrap`` turns such a pair into a Module class that subclasses the concept's
NumPy reference (so it keeps the constructor, the parameters and the buffers that the engine
loads and reads) and translates, in both directions:

- layouts: ``w = weight.T`` and ``dweight = dw.T``; an RNN's one bias ``b = b_ih + b_hh`` (its
  gradient goes to both); batch-major ``(N, T, D)`` sequences from torch's time-major ones;
  an LSTM's gate blocks in CS231n's order i, f, o, g from torch's i, f, g, o;
- settings: torch's ``momentum`` m is CS231n's ``1 - m``; ``mode`` from train/eval;
  the dropout mask is the engine's (``np.random.rand`` and friends return it while the user's
  function runs, so the draw inside the function yields the reference's mask);
- cases the convention cannot express (dilation, groups, padding of a pool, two RNN layers,
  class weights) raise ``Skip`` with the reason, detected from the constructor arguments or
  the inputs, before the user's code runs.

Named conventions (``CONVENTIONS``): a correct solution that differs from torch only by one of
them is told so in one sentence; declared (``--convention NAME``), the wrapper converts and the
rest is checked exactly. The undeclared alternative is recorded while the case runs (``record``)
so that ``verify`` can say which convention would explain a mismatch.
"""
from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from compare.verify.adapters import Skip

CONVENTIONS = {
    "biased-running-var": "the running variance is updated with the biased batch variance "
                          "(1/N, as CS231n's bn_param) instead of torch's unbiased 1/(N-1)",
    "drop-probability": "dropout_param['p'] is the probability of dropping a unit (older "
                        "CS231n years) instead of keeping it",
    # not a CS231n one: the makemore backprop lecture's; verify runs the concept's variant
    # cases (those constructed with bessel=True) for it
    "bessel-variance": "the batch variance that normalizes is Bessel-corrected, 1/(N-1) (the "
                       "makemore backprop lecture), instead of torch's biased 1/N",
}


class CodeProblem(Exception):
    """The user's function returned something the convention does not allow (one sentence)."""


@dataclass(frozen=True)
class Layer:
    """One CS231n layer: the names of its functions and the concept it stands in for."""

    stem: str
    concept: str                    # a registry spec: "linear", "activations:ReLU"
    forward: str
    backwards: tuple[str, ...]      # batchnorm has an _alt backward too; empty for a loss
    build: Callable[..., type]
    arity: int                      # the forward's positional parameters: (x, w, b) is 3


def _unpack(result: Any, count: int, function: Callable) -> tuple:
    """``count`` values from a backward, or one sentence naming what came back instead."""
    if count == 1:
        if isinstance(result, tuple) and len(result) == 1:
            return result
        if result is None or isinstance(result, tuple):
            raise CodeProblem(f"{function.__name__} returned {_what(result)}, expected one "
                              "gradient array")
        return (result,)
    if not isinstance(result, tuple) or len(result) != count:
        raise CodeProblem(f"{function.__name__} returned {_what(result)}, expected a tuple of "
                          f"{count} gradients")
    return result


def _what(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return type(value).__name__


def _array(value: Any, shape: tuple[int, ...], what: str, function: Callable) -> np.ndarray:
    """``value`` as an array of ``shape``, or one sentence naming what it was instead."""
    if value is None or isinstance(value, (str, bytes, dict)):
        raise CodeProblem(f"{function.__name__} returned {_what(value)} as {what}, expected "
                          f"an array of shape {shape}")
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise CodeProblem(f"{function.__name__} returned {what} of dtype {array.dtype}, "
                          f"expected a floating-point array of shape {shape}")
    if array.shape != tuple(shape):
        raise CodeProblem(f"{function.__name__} returned {what} of shape {array.shape}, "
                          f"expected {tuple(shape)}")
    return array


def _forward(function: Callable, *arguments: Any) -> tuple[Any, Any]:
    result = function(*arguments)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CodeProblem(f"{function.__name__} returned {_what(result)}, expected "
                          "(out, cache)")
    return result


class _Pair:
    """What every wrapper shares: the user's functions, the declared conventions, the
    settings check before anything runs, and recording the undeclared alternatives."""

    forward_fn: Callable
    backward_fn: Callable | None
    conventions: frozenset[str] = frozenset()
    record: dict | None = None       # set by verify per case; the first instance fills it

    def __init__(self, **init: Any) -> None:
        super().__init__(**init)
        self._init = init
        reason = self.cannot_express(init)
        if reason:
            raise Skip(reason)
        record = type(self).record
        self._recording = record is not None and not record.get("taken")
        if self._recording:
            record["taken"] = True

    def cannot_express(self, init: dict[str, Any]) -> str:
        return ""

    def contributions(self, name: str, counts: np.ndarray) -> None:
        """How many terms the reference adds into each element of gradient ``name``: the
        context that tells '=' from '+=' over overlapping windows."""
        if self._recording:
            type(self).record.setdefault("contributions", {})[name] = counts

    def alternative(self, convention: str, name: str, value: Any) -> None:
        """What tensor ``name`` would be under an undeclared ``convention``."""
        if self._recording and convention not in self.conventions:
            type(self).record.setdefault("alternatives", {}).setdefault(
                convention, {})[name] = np.asarray(value)


def _unsupported(init: dict[str, Any], defaults: dict[str, Any], what: str) -> str:
    """The first constructor argument whose value the CS231n function cannot take."""
    for name, default in defaults.items():
        if name in init and init[name] != default:
            return f"{what} cannot express {name}={init[name]!r}"
    return ""


# --- affine: out = x.reshape(N, D) @ w + b, w of shape (D, M) -----------------------------------
class _Affine(_Pair):
    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        rows = x.reshape(-1, self.in_features)                    # (N, D) every example a row
        w = self.weight.data.T                                    # (D, M) CS231n's layout
        b = self.bias.data if self.bias is not None else np.zeros(self.out_features,
                                                                   self.weight.data.dtype)
        out, self._cache = _forward(self.forward_fn, rows, w, b)
        out = _array(out, (rows.shape[0], self.out_features), "out", self.forward_fn)
        self._shape = x.shape
        return out.reshape(*x.shape[:-1], self.out_features)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dout = np.asarray(grad_output).reshape(-1, self.out_features)  # (N, M)
        dx, dw, db = _unpack(self.backward_fn(dout, self._cache), 3, self.backward_fn)
        dw = _array(dw, (self.in_features, self.out_features), "dw", self.backward_fn)
        self.weight.grad = dw.T                                   # back to torch's (M, D)
        if self.bias is not None:
            self.bias.grad = _array(db, (self.out_features,), "db", self.backward_fn)
        rows = (int(np.prod(self._shape[:-1])), self.in_features)
        return _array(dx, rows, "dx", self.backward_fn).reshape(self._shape)


# --- relu: parameter-free -----------------------------------------------------------------------
class _ReLU(_Pair):
    def cannot_express(self, init: dict[str, Any]) -> str:
        return _unsupported(init, {"inplace": False}, f"{self.forward_fn.__name__} (it returns "
                            "a new array)")

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = _forward(self.forward_fn, x)
        return _array(out, np.shape(x), "out", self.forward_fn)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        (dx,) = _unpack(self.backward_fn(grad_output, self._cache), 1, self.backward_fn)
        return _array(dx, np.shape(grad_output), "dx", self.backward_fn)


# --- batchnorm: bn_param with mode, eps, momentum, running_mean, running_var ----------------------
def _rows(x: np.ndarray) -> np.ndarray:
    """(N, C) as is; (N, C, L) as (N*L, C) rows: one normalization per channel either way."""
    return x if x.ndim == 2 else x.transpose(0, 2, 1).reshape(-1, x.shape[1])


def _unrows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) == 2:
        return rows
    n, c, length = shape
    return rows.reshape(n, length, c).transpose(0, 2, 1)


class _BatchNorm(_Pair):
    def cannot_express(self, init: dict[str, Any]) -> str:
        if "momentum" in init and init["momentum"] is None:
            return (f"{self.forward_fn.__name__} cannot express momentum=None (a cumulative "
                    "average): bn_param['momentum'] is a fixed decay")
        return ""  # eval mode without running statistics is decided in forward

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if not self.training and self.running_mean is None:
            raise Skip(f"{self.forward_fn.__name__} in 'test' mode uses running statistics; "
                       "it cannot express eval mode without them (track_running_stats=False)")
        channels = self.num_features
        dtype = x.dtype
        rows = _rows(x)                                           # (N, C)
        gamma = self.weight.data if self.weight is not None else np.ones(channels, dtype)
        beta = self.bias.data if self.bias is not None else np.zeros(channels, dtype)
        tracking = self.running_mean is not None
        old_mean = self.running_mean if tracking else np.zeros(channels, dtype)
        old_var = self.running_var if tracking else np.ones(channels, dtype)
        bn_param = {"mode": "train" if self.training else "test", "eps": self.eps,
                    "momentum": 1.0 - self.momentum,              # CS231n keeps, torch adds
                    "running_mean": old_mean.copy(), "running_var": old_var.copy()}
        out, self._cache = _forward(self.forward_fn, rows, gamma, beta, bn_param)
        out = _array(out, rows.shape, "out", self.forward_fn)
        if tracking and self.training:
            self.running_mean = np.asarray(bn_param["running_mean"])
            yours = np.asarray(bn_param["running_var"])
            unbiased = self._unbiased(yours, old_var, rows.shape[0])
            self.alternative("biased-running-var", "buffer.running_var", unbiased)
            declared = "biased-running-var" in self.conventions
            self.running_var = unbiased if declared else yours
            self.num_batches_tracked = self.num_batches_tracked + 1
        self._shape = x.shape
        return _unrows(out, x.shape)

    def _unbiased(self, yours: np.ndarray, old: np.ndarray, n: int) -> np.ndarray:
        """Your running variance with the batch's biased variance v_b (recovered from
        yours = (1-m) old + m v_b) replaced by torch's unbiased v_b * n / (n - 1)."""
        m = self.momentum
        batch_var = (yours - (1.0 - m) * old) / m                 # (C,) your 1/N variance
        return (1.0 - m) * old + m * batch_var * n / max(n - 1, 1)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        if not self.training and self._cache is None:
            raise Skip(f"{self.forward_fn.__name__} keeps no cache in 'test' mode: its "
                       "backward is for training mode only")
        dout = _rows(np.asarray(grad_output))                     # (N, C)
        dx, dgamma, dbeta = _unpack(self.backward_fn(dout, self._cache), 3, self.backward_fn)
        if self.weight is not None:
            self.weight.grad = _array(dgamma, (self.num_features,), "dgamma", self.backward_fn)
            self.bias.grad = _array(dbeta, (self.num_features,), "dbeta", self.backward_fn)
        return _unrows(_array(dx, dout.shape, "dx", self.backward_fn), self._shape)


# --- layernorm: ln_param with eps; normalizes each row of (N, D) --------------------------------
class _LayerNorm(_Pair):
    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        features = int(np.prod(self.normalized_shape))
        rows = x.reshape(-1, features)                            # (N, D) the trailing dims flat
        gamma = self.weight.data.reshape(-1) if self.weight is not None \
            else np.ones(features, x.dtype)
        beta = self.bias.data.reshape(-1) if getattr(self, "bias", None) is not None \
            else np.zeros(features, x.dtype)
        out, self._cache = _forward(self.forward_fn, rows, gamma, beta, {"eps": self.eps})
        self._shape = x.shape
        return _array(out, rows.shape, "out", self.forward_fn).reshape(x.shape)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        features = int(np.prod(self.normalized_shape))
        dout = np.asarray(grad_output).reshape(-1, features)      # (N, D)
        dx, dgamma, dbeta = _unpack(self.backward_fn(dout, self._cache), 3, self.backward_fn)
        if self.weight is not None:
            self.weight.grad = _array(dgamma, (features,), "dgamma",
                                      self.backward_fn).reshape(self.normalized_shape)
        if getattr(self, "bias", None) is not None:
            self.bias.grad = _array(dbeta, (features,), "dbeta",
                                    self.backward_fn).reshape(self.normalized_shape)
        return _array(dx, dout.shape, "dx", self.backward_fn).reshape(self._shape)


# --- dropout: dropout_param with p, mode, seed; the mask drawn inside the function ---------------
_DRAWS = ("rand", "random_sample", "random", "uniform", "binomial")


@contextlib.contextmanager
def _planted(uniform: np.ndarray) -> Iterator[None]:
    """While the user's function runs, a uniform draw of ``uniform``'s shape returns it, so a
    mask drawn as ``np.random.rand(*x.shape) < p`` is the engine's mask."""
    originals = {name: getattr(np.random, name) for name in _DRAWS}
    shape = uniform.shape

    def sized(args: tuple, size: Any) -> tuple | None:
        asked = args if args and all(isinstance(a, (int, np.integer)) for a in args) else size
        asked = (asked,) if isinstance(asked, (int, np.integer)) else asked
        return tuple(asked) if asked is not None else None

    def rand(*args: Any) -> Any:
        return uniform.copy() if sized(args, None) == shape else originals["rand"](*args)

    def sample(size: Any = None) -> Any:
        return uniform.copy() if sized((), size) == shape else originals["random_sample"](size)

    def uniform_draw(low: float = 0.0, high: float = 1.0, size: Any = None) -> Any:
        if sized((), size) == shape:
            return low + (high - low) * uniform
        return originals["uniform"](low, high, size)

    def binomial(n: int, p: float, size: Any = None) -> Any:
        if n == 1 and sized((), size) == shape:
            return (uniform < p).astype(np.int64)                 # 1 with probability p
        return originals["binomial"](n, p, size)

    replacements = {"rand": rand, "random_sample": sample, "random": sample,
                    "uniform": uniform_draw, "binomial": binomial}
    try:
        for name, function in replacements.items():
            setattr(np.random, name, function)
        yield
    finally:
        for name, function in originals.items():
            setattr(np.random, name, function)


class _Dropout(_Pair):
    def cannot_express(self, init: dict[str, Any]) -> str:
        if init.get("inplace"):
            return f"{self.forward_fn.__name__} returns a new array: it cannot express inplace"
        if float(init.get("p", 0.5)) == 1.0:
            return (f"{self.forward_fn.__name__} divides by the keep-probability: p=1 (drop "
                    "everything) is outside its convention")
        return ""

    def _run(self, x: np.ndarray, mask: np.ndarray, drop: bool) -> tuple[Any, Any]:
        """The user's forward under one convention: p as it reads it, the draw that gives
        the engine's mask when compared the way that convention compares."""
        keep_p = 1.0 - self.p
        if drop:   # mask = rand >= p: kept units draw at or above p
            uniform = np.where(mask, self.p + 0.5 * keep_p, 0.5 * self.p)
            param = {"p": self.p, "mode": "train", "seed": 0}
        else:      # mask = rand < p: kept units draw below the keep-probability
            uniform = np.where(mask, 0.5 * keep_p, keep_p + 0.5 * self.p)
            param = {"p": keep_p, "mode": "train", "seed": 0}
        with _planted(uniform.astype(np.float64)):
            return _forward(self.forward_fn, x, param)

    def forward(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(x)
        self._shape = x.shape
        drop = "drop-probability" in self.conventions
        if not self.training:
            p = self.p if drop else 1.0 - self.p
            out, self._cache = _forward(self.forward_fn, x, {"p": p, "mode": "test"})
            self._other = None
            return _array(out, x.shape, "out", self.forward_fn)
        mask = np.asarray(mask, dtype=bool)
        out, self._cache = self._run(x, mask, drop)
        self._other = None
        if not drop and self._recording:
            with np.errstate(all="ignore"):  # the other reading may divide by zero
                other_out, self._other = self._run(x, mask, drop=True)
            self.alternative("drop-probability", "out", other_out)
        return _array(out, x.shape, "out", self.forward_fn)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        (dx,) = _unpack(self.backward_fn(grad_output, self._cache), 1, self.backward_fn)
        if self._other is not None:
            with np.errstate(all="ignore"):
                (other,) = _unpack(self.backward_fn(grad_output, self._other), 1,
                                   self.backward_fn)
            self.alternative("drop-probability", "grad.input.x", other)
        return _array(dx, self._shape, "dx", self.backward_fn)


# --- softmax_loss(x, y) -> (loss, dx): CrossEntropyLoss with every default --------------------
class _SoftmaxLoss(_Pair):
    def cannot_express(self, init: dict[str, Any]) -> str:
        if init.get("weight") is not None:
            return f"{self.forward_fn.__name__} cannot express class weights"
        return _unsupported(init, {"reduction": "mean", "label_smoothing": 0.0},
                            self.forward_fn.__name__)

    def forward(self, input: np.ndarray, target: np.ndarray) -> np.ndarray:
        input, target = np.asarray(input), np.asarray(target)
        name = self.forward_fn.__name__
        if input.ndim != 2:
            raise Skip(f"{name} takes scores of shape (N, C), not {input.ndim}-d ones")
        if np.any(target == self.ignore_index):
            raise Skip(f"{name} cannot express ignored targets (ignore_index)")
        result = self.forward_fn(input, target)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise CodeProblem(f"{name} returned {_what(result)}, expected (loss, dx)")
        loss, dx = result
        self._dx = _array(dx, input.shape, "dx", self.forward_fn)
        return _array(loss, (), "the loss", self.forward_fn)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self._dx * grad_output                             # dx is for an upstream of 1


# --- word_embedding: out = W[x] ------------------------------------------------------------------
class _WordEmbedding(_Pair):
    def cannot_express(self, init: dict[str, Any]) -> str:
        return _unsupported(init, {"padding_idx": None, "max_norm": None,
                                   "scale_grad_by_freq": False}, self.forward_fn.__name__)

    def forward(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices)
        out, self._cache = _forward(self.forward_fn, indices, self.weight.data)
        return _array(out, (*indices.shape, self.embedding_dim), "out", self.forward_fn)

    def backward(self, grad_output: np.ndarray) -> None:
        (dw,) = _unpack(self.backward_fn(grad_output, self._cache), 1, self.backward_fn)
        self.weight.grad = _array(dw, self.weight.data.shape, "dW", self.backward_fn)
        return None


# --- conv_forward_naive(x, w, b, conv_param) with one stride and one pad -----------------------
def _one(value: Any, name: str, function: Callable) -> int:
    pair = value if isinstance(value, tuple) else (value, value)
    if pair[0] != pair[1]:
        raise Skip(f"{function.__name__} takes one {name} for both axes, not {pair}")
    return int(pair[0])


class _Conv(_Pair):
    def cannot_express(self, init: dict[str, Any]) -> str:
        name = self.forward_fn.__name__
        if self.dilation != (1, 1) or self.groups != 1 or self.padding_mode != "zeros":
            setting = next(f"{k}={init[k]!r}" for k in ("dilation", "groups", "padding_mode")
                           if k in init)
            return f"{name} cannot express {setting}"
        self._stride = _one(self.stride, "stride", self.forward_fn)
        if self.padding == "valid":
            self._pad = 0
        elif self.padding == "same":
            kernel = _one(self.kernel_size, "kernel size under padding='same'", self.forward_fn)
            if kernel % 2 == 0:
                return (f"{name} pads both sides alike: padding='same' with an even kernel "
                        f"({kernel}) pads one side more")
            self._pad = (kernel - 1) // 2
        else:
            self._pad = _one(self.padding, "padding", self.forward_fn)
        return ""

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self._unbatched = x.ndim == 3
        batch = x[None] if self._unbatched else x                 # (N, C, H, W)
        b = self.bias.data if self.bias is not None else np.zeros(self.out_channels, x.dtype)
        conv_param = {"stride": self._stride, "pad": self._pad}
        if self._recording:
            self.contributions("grad.input.x", self._coverage(x.shape))
        out, self._cache = _forward(self.forward_fn, batch, self.weight.data, b, conv_param)
        out = np.asarray(out)
        if out.ndim != 4 or out.shape[:2] != (batch.shape[0], self.out_channels):
            raise CodeProblem(f"{self.forward_fn.__name__} returned out of shape {out.shape}, "
                              f"expected (N, F, H', W') = ({batch.shape[0]}, "
                              f"{self.out_channels}, H', W')")
        self._shape = batch.shape
        return out[0] if self._unbatched else out

    def _coverage(self, shape: tuple[int, ...]) -> np.ndarray:
        """How many windows read each input element (its gradient adds that many terms)."""
        height, width = shape[-2:]
        kernel_h, kernel_w = self.kernel_size
        s, p = self._stride, self._pad
        counts = np.zeros((height + 2 * p, width + 2 * p), np.int64)
        for i in range(0, height + 2 * p - kernel_h + 1, s):     # every window position
            for j in range(0, width + 2 * p - kernel_w + 1, s):
                counts[i:i + kernel_h, j:j + kernel_w] += 1
        return np.broadcast_to(counts[p:p + height, p:p + width], shape).copy()

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dout = np.asarray(grad_output)
        dout = dout[None] if self._unbatched else dout
        dx, dw, db = _unpack(self.backward_fn(dout, self._cache), 3, self.backward_fn)
        self.weight.grad = _array(dw, self.weight.data.shape, "dw", self.backward_fn)
        if self.bias is not None:
            self.bias.grad = _array(db, (self.out_channels,), "db", self.backward_fn)
        dx = _array(dx, self._shape, "dx", self.backward_fn)
        return dx[0] if self._unbatched else dx


# --- max_pool_forward_naive(x, pool_param): pool_height, pool_width, stride --------------------
class _MaxPool(_Pair):
    def cannot_express(self, init: dict[str, Any]) -> str:
        if self.padding != (0, 0) or self.dilation != (1, 1) or self.return_indices \
                or self.ceil_mode:
            setting = next(f"{k}={init[k]!r}" for k in ("padding", "dilation", "return_indices",
                                                        "ceil_mode") if init.get(k))
            return f"{self.forward_fn.__name__} cannot express {setting}"
        self._stride = _one(self.stride, "stride", self.forward_fn)
        return ""

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self._unbatched = x.ndim == 3
        batch = x[None] if self._unbatched else x                 # (N, C, H, W)
        height, width = self.kernel_size
        pool_param = {"pool_height": height, "pool_width": width, "stride": self._stride}
        out, self._cache = _forward(self.forward_fn, batch, pool_param)
        rows = 1 + (batch.shape[2] - height) // self._stride
        if self._recording:
            self.contributions("grad.input.x", self._winners(batch).reshape(x.shape))
        columns = 1 + (batch.shape[3] - width) // self._stride
        out = _array(out, (*batch.shape[:2], rows, columns), "out", self.forward_fn)
        self._shape = batch.shape
        return out[0] if self._unbatched else out

    def _winners(self, batch: np.ndarray) -> np.ndarray:
        """How many windows each element is the (first) maximum of."""
        height, width = self.kernel_size
        s = self._stride
        counts = np.zeros(batch.shape, np.int64)
        n, c = np.indices(batch.shape[:2])
        for i in range(0, batch.shape[2] - height + 1, s):        # every window position
            for j in range(0, batch.shape[3] - width + 1, s):
                window = batch[:, :, i:i + height, j:j + width].reshape(*batch.shape[:2], -1)
                r, q = np.divmod(window.argmax(axis=2), width)  # (N, C) first max
                counts[n, c, i + r, j + q] += 1
        return counts

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dout = np.asarray(grad_output)
        dout = dout[None] if self._unbatched else dout
        (dx,) = _unpack(self.backward_fn(dout, self._cache), 1, self.backward_fn)
        dx = _array(dx, self._shape, "dx", self.backward_fn)
        return dx[0] if self._unbatched else dx


# --- vanilla RNN: batch-major (N, T, D), one bias; a step pair is looped over time -------------
class _RNN(_Pair):
    step = False                     # True: rnn_step_forward/backward, looped here over time

    def cannot_express(self, init: dict[str, Any]) -> str:
        name = self.forward_fn.__name__
        if init.get("num_layers", 1) != 1:
            return f"{name} is one layer: it cannot express num_layers={init['num_layers']}"
        if init.get("nonlinearity", "tanh") != "tanh":
            return f"{name} is a tanh RNN: it cannot express nonlinearity='relu'"
        return _unsupported(init, {"bidirectional": False}, name)

    def _weights(self, dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        wx = self.weight_ih_l0.data.T                             # (D, H)
        wh = self.weight_hh_l0.data.T                             # (H, H)
        b = self.bias_ih_l0.data + self.bias_hh_l0.data if self.bias \
            else np.zeros(self.hidden_size, dtype)               # (H,) one bias: b_ih + b_hh
        return wx, wh, b

    def forward(self, input: np.ndarray, h0: np.ndarray | None = None):
        input = np.asarray(input)
        self._unbatched = input.ndim == 2
        x = input[None] if self._unbatched else (input if self.batch_first
                                                  else input.transpose(1, 0, 2))  # (N, T, D)
        n, steps, _ = x.shape
        hidden = self.hidden_size
        self._h0_shape = None if h0 is None else np.shape(h0)
        start = np.zeros((n, hidden), x.dtype) if h0 is None else np.asarray(h0).reshape(n, hidden)
        wx, wh, b = self._weights(x.dtype)
        if self.step:
            hs, self._cache, prev = [], [], start
            for t in range(steps):
                prev, cache = _forward(self.forward_fn, x[:, t], prev, wx, wh, b)
                prev = _array(prev, (n, hidden), "next_h", self.forward_fn)
                hs.append(prev)
                self._cache.append(cache)
            h = np.stack(hs, axis=1)                              # (N, T, H)
        else:
            h, self._cache = _forward(self.forward_fn, x, start, wx, wh, b)
            h = _array(h, (n, steps, hidden), "h", self.forward_fn)
        self._x_shape = x.shape
        last = h[:, -1]                                           # (N, H)
        if self._unbatched:
            return h[0], last                                     # (T, H), (1, H)
        output = h if self.batch_first else h.transpose(1, 0, 2)
        return output, last[None]                                 # (1, N, H)

    def backward(self, grad_output: Any) -> Any:
        grad_seq, grad_last = grad_output
        n, steps, _ = self._x_shape
        hidden = self.hidden_size
        if self._unbatched:
            dh = np.asarray(grad_seq)[None].copy()
        elif self.batch_first:
            dh = np.asarray(grad_seq).copy()
        else:
            dh = np.asarray(grad_seq).transpose(1, 0, 2).copy()   # (N, T, H)
        if grad_last is not None:
            dh[:, -1] += np.asarray(grad_last).reshape(n, hidden)  # h_n is the last h_t
        if self.step:
            dx_steps, dprev = [None] * steps, np.zeros((n, hidden), dh.dtype)
            dwx = dwh = db = 0.0
            for t in reversed(range(steps)):
                got = _unpack(self.backward_fn(dh[:, t] + dprev, self._cache[t]), 5,
                              self.backward_fn)
                dx_t, dprev, dwx_t, dwh_t, db_t = got
                dx_steps[t] = dx_t
                dwx, dwh, db = dwx + np.asarray(dwx_t), dwh + np.asarray(dwh_t), \
                    db + np.asarray(db_t)
            dx, dh0 = np.stack(dx_steps, axis=1), dprev
        else:
            dx, dh0, dwx, dwh, db = _unpack(self.backward_fn(dh, self._cache), 5,
                                            self.backward_fn)
        dx = _array(dx, self._x_shape, "dx", self.backward_fn)
        d_in = self.input_size
        self.weight_ih_l0.grad = _array(dwx, (d_in, hidden), "dWx", self.backward_fn).T
        self.weight_hh_l0.grad = _array(dwh, (hidden, hidden), "dWh", self.backward_fn).T
        if self.bias:
            db = _array(db, (hidden,), "db", self.backward_fn)
            self.bias_ih_l0.grad, self.bias_hh_l0.grad = db, db.copy()  # one bias, both grads
        dx = dx[0] if self._unbatched else (dx if self.batch_first else dx.transpose(1, 0, 2))
        if self._h0_shape is None:
            return dx
        return dx, _array(dh0, (n, hidden), "dh0", self.backward_fn).reshape(self._h0_shape)


class _RNNStep(_RNN):
    step = True


# --- LSTM: CS231n's gate order i, f, o, g (torch's is i, f, g, o); one bias; c0 = 0 -----------
def _gate_order(hidden: int) -> np.ndarray:
    """The row permutation between torch's gate blocks (i, f, g, o) and CS231n's (i, f, o, g):
    it swaps the last two blocks, so it is its own inverse."""
    blocks = np.arange(4 * hidden).reshape(4, hidden)
    return blocks[[0, 1, 3, 2]].ravel()                           # (4H,)


class _LSTM(_Pair):
    """``lstm_forward(x, h0, Wx, Wh, b) -> (h, cache)`` over (N, T, D), c0 = 0, or (``step``)
    ``lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b) -> (next_h, next_c, cache)`` looped here
    over time. ``lstm_forward`` returns no c_n: its value, and the path of dL/dc_n into the
    gradients, come from the reference LSTM (the h path, which every output takes, is yours)."""

    step = False

    def cannot_express(self, init: dict[str, Any]) -> str:
        name = self.forward_fn.__name__
        if init.get("num_layers", 1) != 1:
            return f"{name} is one layer: it cannot express num_layers={init['num_layers']}"
        return _unsupported(init, {"bidirectional": False, "proj_size": 0}, name)

    def _weights(self, dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = _gate_order(self.hidden_size)
        wx = self.weight_ih_l0.data[order].T                      # (D, 4H) gates i, f, o, g
        wh = self.weight_hh_l0.data[order].T                      # (H, 4H)
        b = (self.bias_ih_l0.data + self.bias_hh_l0.data)[order] if self.bias \
            else np.zeros(4 * self.hidden_size, dtype)            # (4H,) one bias: b_ih + b_hh
        return wx, wh, b

    def forward(self, input: np.ndarray, hx: Any = None, dropout_mask: Any = None):
        input = np.asarray(input)
        self._unbatched = input.ndim == 2
        x = input[None] if self._unbatched else (input if self.batch_first
                                                  else input.transpose(1, 0, 2))  # (N, T, D)
        n, steps, _ = x.shape
        hidden = self.hidden_size
        if hx is not None and not self.step:
            raise Skip(f"{self.forward_fn.__name__} starts from c0 = 0: it cannot express a "
                       "given c0")
        self._hx_shapes = None if hx is None else tuple(np.shape(s) for s in hx)
        h0 = np.zeros((n, hidden), x.dtype) if hx is None else np.asarray(hx[0]).reshape(n, hidden)
        c0 = np.zeros((n, hidden), x.dtype) if hx is None else np.asarray(hx[1]).reshape(n, hidden)
        wx, wh, b = self._weights(x.dtype)
        if self.step:
            hs, self._cache, prev_h, prev_c = [], [], h0, c0
            for t in range(steps):
                result = self.forward_fn(x[:, t], prev_h, prev_c, wx, wh, b)
                if not (isinstance(result, tuple) and len(result) == 3):
                    raise CodeProblem(f"{self.forward_fn.__name__} returned {_what(result)}, "
                                      "expected (next_h, next_c, cache)")
                prev_h = _array(result[0], (n, hidden), "next_h", self.forward_fn)
                prev_c = _array(result[1], (n, hidden), "next_c", self.forward_fn)
                hs.append(prev_h)
                self._cache.append(result[2])
            h, last_c = np.stack(hs, axis=1), prev_c              # (N, T, H), (N, H)
        else:
            h, self._cache = _forward(self.forward_fn, x, h0, wx, wh, b)
            h = _array(h, (n, steps, hidden), "h", self.forward_fn)
            _, (_, c_n) = super().forward(input)                  # the reference's c_n
            last_c = np.asarray(c_n).reshape(n, hidden)
        self._x_shape = x.shape
        last_h = h[:, -1]                                         # (N, H)
        if self._unbatched:
            return h[0], (last_h, last_c)                         # (T, H), (1, H) each
        output = h if self.batch_first else h.transpose(1, 0, 2)
        return output, (last_h[None], last_c[None])               # (1, N, H) each

    def _sequence(self, grad: Any, n: int, steps: int, dtype: Any) -> np.ndarray:
        if grad is None:
            return np.zeros((n, steps, self.hidden_size), dtype)
        grad = np.asarray(grad)
        if self._unbatched:
            return grad[None].copy()
        return grad.copy() if self.batch_first else grad.transpose(1, 0, 2).copy()  # (N, T, H)

    def backward(self, grad_output: Any) -> Any:
        grad_seq, grad_states = grad_output if isinstance(grad_output, tuple) \
            else (grad_output, None)
        grad_hn, grad_cn = grad_states if grad_states is not None else (None, None)
        n, steps, _ = self._x_shape
        hidden = self.hidden_size
        dh = self._sequence(grad_seq, n, steps, np.result_type(grad_seq))
        if grad_hn is not None:
            dh[:, -1] += np.asarray(grad_hn).reshape(n, hidden)   # h_n is the last h_t
        dc_last = np.zeros((n, hidden), dh.dtype) if grad_cn is None \
            else np.asarray(grad_cn).reshape(n, hidden)           # c_n is the last c_t
        extra = None
        if self.step:
            dx_steps, dprev_h, dprev_c = [None] * steps, np.zeros((n, hidden), dh.dtype), dc_last
            dwx = dwh = db = 0.0
            for t in reversed(range(steps)):
                got = _unpack(self.backward_fn(dh[:, t] + dprev_h, dprev_c, self._cache[t]), 6,
                              self.backward_fn)
                dx_t, dprev_h, dprev_c, dwx_t, dwh_t, db_t = got
                dx_steps[t] = dx_t
                dprev_c = _array(dprev_c, (n, hidden), "dprev_c", self.backward_fn)
                dwx, dwh, db = dwx + np.asarray(dwx_t), dwh + np.asarray(dwh_t), \
                    db + np.asarray(db_t)
            dx, dh0, dc0 = np.stack(dx_steps, axis=1), dprev_h, dprev_c
        else:
            dx, dh0, dwx, dwh, db = _unpack(self.backward_fn(dh, self._cache), 5,
                                            self.backward_fn)
            dc0 = None
            if grad_cn is not None:                               # the reference's c_n path
                zeros = np.zeros_like(np.asarray(grad_seq))
                extra = super().backward((zeros, (np.zeros_like(np.asarray(grad_cn)),
                                                  grad_cn)))
                extra = {"dx": extra, **{name: p.grad for name, p in self.named_parameters()}}
        order = _gate_order(hidden)
        dx = _array(dx, self._x_shape, "dx", self.backward_fn)
        grads = {"weight_ih_l0": _array(dwx, (self.input_size, 4 * hidden), "dWx",
                                        self.backward_fn).T[order],   # back to i, f, g, o
                 "weight_hh_l0": _array(dwh, (hidden, 4 * hidden), "dWh",
                                        self.backward_fn).T[order]}
        if self.bias:
            db = _array(db, (4 * hidden,), "db", self.backward_fn)[order]
            grads["bias_ih_l0"], grads["bias_hh_l0"] = db, db.copy()  # one bias, both grads
        dx = dx[0] if self._unbatched else (dx if self.batch_first else dx.transpose(1, 0, 2))
        if extra is not None:
            dx = dx + np.asarray(extra["dx"])
            grads = {name: grad + extra[name] for name, grad in grads.items()}
        for name, grad in grads.items():
            getattr(self, name).grad = grad
        if self._hx_shapes is None:
            return dx
        dh0 = _array(dh0, (n, hidden), "dprev_h", self.backward_fn)
        return dx, (dh0.reshape(self._hx_shapes[0]), np.asarray(dc0).reshape(self._hx_shapes[1]))


class _LSTMStep(_LSTM):
    step = True


LAYERS = (
    Layer("affine", "linear", "affine_forward", ("affine_backward",), _Affine, 3),
    Layer("relu", "activations:ReLU", "relu_forward", ("relu_backward",), _ReLU, 1),
    Layer("batchnorm", "batchnorm", "batchnorm_forward",
          ("batchnorm_backward", "batchnorm_backward_alt"), _BatchNorm, 4),
    Layer("layernorm", "layernorm", "layernorm_forward", ("layernorm_backward",), _LayerNorm, 4),
    Layer("dropout", "dropout", "dropout_forward", ("dropout_backward",), _Dropout, 2),
    Layer("conv", "conv2d", "conv_forward_naive", ("conv_backward_naive",), _Conv, 4),
    Layer("max_pool", "pooling:MaxPool2d", "max_pool_forward_naive",
          ("max_pool_backward_naive",), _MaxPool, 2),
    Layer("word_embedding", "embedding", "word_embedding_forward",
          ("word_embedding_backward",), _WordEmbedding, 2),
    Layer("rnn_step", "rnn", "rnn_step_forward", ("rnn_step_backward",), _RNNStep, 5),
    Layer("rnn", "rnn", "rnn_forward", ("rnn_backward",), _RNN, 5),
    Layer("lstm_step", "lstm", "lstm_step_forward", ("lstm_step_backward",), _LSTMStep, 6),
    Layer("lstm", "lstm", "lstm_forward", ("lstm_backward",), _LSTM, 5),
    Layer("softmax_loss", "losses:CrossEntropyLoss", "softmax_loss", (), _SoftmaxLoss, 2),
)


def recognise(forward: Callable) -> Layer | None:
    """The CS231n layer a forward function (or ``softmax_loss``) is: its name and its
    signature (``affine_forward(x, w, b)``: three positional parameters, no ``*args``)."""
    name = getattr(forward, "__name__", "")
    layer = next((layer for layer in LAYERS if layer.forward == name), None)
    if layer is None:
        return None
    try:
        parameters = list(inspect.signature(forward).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    return layer if len(positional) == layer.arity and not variadic else None


def find(namespace: dict[str, Any]) -> list[tuple[Layer, Callable, Callable | None]]:
    """Every (layer, forward, backward) a module defines: one per backward it has."""
    found = []
    for layer in LAYERS:
        forward = namespace.get(layer.forward)
        if not inspect.isfunction(forward) or recognise(forward) is not layer:
            continue
        if not layer.backwards:
            found.append((layer, forward, None))
        for name in layer.backwards:
            if inspect.isfunction(namespace.get(name)):
                found.append((layer, forward, namespace[name]))
    return found


def wrap(layer: Layer, reference: type, forward: Callable, backward: Callable | None,
         conventions: frozenset[str] = frozenset()) -> type:
    """A class that stands in for ``reference`` and runs the user's two functions."""
    if layer.backwards and backward is None:
        raise ValueError(f"{forward.__name__} needs its backward ({layer.backwards[0]})")
    attributes = {"forward_fn": staticmethod(forward),
                  "backward_fn": staticmethod(backward) if backward else None,
                  "conventions": frozenset(conventions), "record": None}
    cls = type(forward.__name__, (layer.build, reference), attributes)
    cls.__qualname__ = forward.__name__
    return cls
