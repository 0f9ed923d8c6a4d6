"""Compare the activations: ReLU, Tanh, Sigmoid, GELU (exact and tanh), Softmax, LogSoftmax.

Edge cases: ReLU at exact zeros (the subgradient 0, as torch), inputs of size ~1e4 (sigmoid
and softmax must not overflow), softmax over every dimension. Torch's deprecated implicit
``dim=None``, which warns, is covered by tests/layers/test_activations.py instead.
Witnesses: ``torch.nn.ReLU``, ``Tanh``, ``Sigmoid``, ``GELU``, ``Softmax``, ``LogSoftmax``.
Run: ``python -m compare.layers.activations``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from compare.concept import Bench, Case, Concept, Draw, fixed, randn
from compare.tolerances import Tolerance
from numpy_impl.layers import activations as numpy_twin
from torch_impl.layers import activations as torch_twin


def _case(name: str, cls: str, x: Draw, fd: bool = True,
          tolerance: dict[str, Tolerance] | None = None, **init: Any) -> Case:
    """One case of activation ``cls`` (the same class name in both twins and in torch.nn)."""
    return Case(name, numpy=getattr(numpy_twin, cls), torch=getattr(torch_twin, cls),
                builtin=getattr(nn, cls), init=init, inputs=dict(x=x), fd=fd,
                tolerance=tolerance or {})


def _huge_rows(rows: int, cols: int) -> Draw:
    """Rows centred at +1e4 and -1e4 alternately, spread N(0, 1): e^x overflows without the
    max shift, yet log-probabilities stay O(1) so float64 finite differences stay accurate."""
    return lambda rng: (np.where(np.arange(rows) % 2 == 0, 1e4, -1e4)[:, None]
                        + rng.standard_normal((rows, cols)))


# Exact zeros (and a negative zero) sit on ReLU's kink.
_ZEROS = fixed([[0.0, -1.5, 2.0, 0.0], [-0.0, 0.25, -3.0, 0.0], [1.0, 0.0, -0.5, 4.0]])
# Saturation: |x| up to 1e4, both signs, one row spanning the whole range.
_HUGE = fixed([[1e4, -1e4, 0.0, 3.0], [-9e3, 8e3, -2.0, 1e4], [5e3, 5e3, -5e3, 0.5]])

CONCEPT = Concept(
    name="activations",
    family="layers",
    summary="ReLU, Tanh, Sigmoid, GELU (exact, tanh), Softmax, LogSoftmax",
    compares="output; grad of x",
    witness="nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.Softmax, nn.LogSoftmax",
    bench=Bench("x (4096, 1000): ReLU, Tanh, Sigmoid, GELU exact and tanh, Softmax and "
                "LogSoftmax over the last dim", cases=(
                    _case("bench-relu", "ReLU", randn(4096, 1000)),
                    _case("bench-tanh", "Tanh", randn(4096, 1000)),
                    _case("bench-sigmoid", "Sigmoid", randn(4096, 1000)),
                    _case("bench-gelu", "GELU", randn(4096, 1000)),
                    _case("bench-gelu-tanh", "GELU", randn(4096, 1000), approximate="tanh"),
                    _case("bench-softmax", "Softmax", randn(4096, 1000), dim=-1),
                    _case("bench-log-softmax", "LogSoftmax", randn(4096, 1000), dim=-1))),
    cases=[
        _case("relu-2d", "ReLU", randn(4, 5)),
        _case("relu-3d", "ReLU", randn(2, 3, 4)),
        # fd off: the zeros are ReLU's kink, where central differences give 1/2, not 0 or 1.
        _case("relu-exact-zeros", "ReLU", _ZEROS, fd=False),
        _case("tanh-2d", "Tanh", randn(4, 5, scale=2.0)),
        _case("tanh-3d", "Tanh", randn(2, 3, 4)),
        _case("tanh-huge", "Tanh", _HUGE),
        _case("sigmoid-2d", "Sigmoid", randn(4, 5, scale=2.0)),
        _case("sigmoid-3d", "Sigmoid", randn(2, 3, 4)),
        _case("sigmoid-huge", "Sigmoid", _HUGE),
        _case("gelu-2d", "GELU", randn(4, 6, scale=3.0)),
        _case("gelu-3d", "GELU", randn(2, 3, 4)),
        _case("gelu-tails", "GELU", fixed([[-9.0, -6.5, -4.0, 4.0, 6.5, 9.0], [-1e-8, 1e-8, 0.0,
                                                                              -0.7, 0.7, 1.3]])),
        _case("gelu-tanh-2d", "GELU", randn(4, 6, scale=3.0), approximate="tanh"),
        _case("gelu-tanh-3d", "GELU", randn(2, 3, 4), approximate="tanh"),
        _case("softmax-dim0", "Softmax", randn(4, 5, scale=2.0), dim=0),
        _case("softmax-dim1", "Softmax", randn(4, 5, scale=2.0), dim=1),
        _case("softmax-dim-1-3d", "Softmax", randn(2, 3, 4, scale=2.0), dim=-1),
        _case("softmax-dim1-3d", "Softmax", randn(2, 3, 4, scale=2.0), dim=1),
        # The largest gradient here follows the random upstream gradient: at seed 178 it was
        # 2.9e-4, and the central differences' own rounding (at most 3.3e-10 over seeds
        # 0-399) reached 1e-6 of it. An absolute floor 6x that rounding, finite differences only.
        _case("softmax-huge", "Softmax", _HUGE, dim=1,
              tolerance={"fd": Tolerance(rtol=1e-6, atol=2e-9)}),
        _case("softmax-huge-rows", "Softmax", _huge_rows(4, 5), dim=-1),
        _case("log-softmax-dim0", "LogSoftmax", randn(4, 5, scale=2.0), dim=0),
        _case("log-softmax-dim1", "LogSoftmax", randn(4, 5, scale=2.0), dim=1),
        _case("log-softmax-dim-1-3d", "LogSoftmax", randn(2, 3, 4, scale=2.0), dim=-1),
        _case("log-softmax-dim-2-3d", "LogSoftmax", randn(2, 3, 4, scale=2.0), dim=-2),
        _case("log-softmax-huge", "LogSoftmax", _huge_rows(4, 5), dim=1),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
