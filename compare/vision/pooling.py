"""Compare ``MaxPool2d`` and ``AvgPool2d``: output (and max pooling's indices); grad of x --
im2col with a hand-written backward (NumPy) vs unfold with autograd (torch), witnessed by
``torch.nn.MaxPool2d`` and ``torch.nn.AvgPool2d``.

Edge cases: overlapping windows (a pixel in several windows sums their gradients), padding,
``ceil_mode`` (windows hanging over the padding), dilation, non-square kernels and strides,
``return_indices``, an unbatched (C, H, W) input; for average pooling every divisor rule
(``count_include_pad`` on and off, with ``ceil_mode``, ``divisor_override``).

Ties: max pooling is not differentiable where two cells of a window share the maximum; torch
routes the whole gradient to the first one in row-major window order. The tie cases (constant
planes, small integers) check that routing against the built-in -- the gradient and the
returned indices. Finite differences are off for them: at a tie, nudging either cell moves the
maximum, so the central difference splits the gradient between the tied cells instead of
following torch's choice (it measures neither one-sided derivative). The random-input cases
(no ties) keep finite differences on.
Run: ``python -m compare.vision.pooling``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from compare.concept import Bench, Case, Concept, Draw, randn
from numpy_impl.vision import pooling as numpy_twin
from torch_impl.vision import pooling as torch_twin


def _case(name: str, cls: str, x: Draw, fd: bool = True, **init: Any) -> Case:
    return Case(name, numpy=getattr(numpy_twin, cls), torch=getattr(torch_twin, cls),
                builtin=getattr(nn, cls), init=init, inputs=dict(x=x), fd=fd)


def constant(*shape: int, value: float = 0.5) -> Draw:
    """A plane of one value: every window is one big tie."""
    return lambda rng: np.full(shape, value)


def small_integers(*shape: int, high: int = 3) -> Draw:
    """Values in {0, ..., high-1}: most windows hold ties, some at the maximum, some not."""
    return lambda rng: rng.integers(0, high, size=shape).astype(np.float64)


CASES = [
    # --- MaxPool2d: random inputs (no ties), finite differences on ---------------------------
    _case("max-2x2", "MaxPool2d", randn(2, 3, 6, 6), kernel_size=2),
    _case("max-3x3-stride-2-pad-1", "MaxPool2d", randn(2, 2, 7, 7), kernel_size=3, stride=2,
          padding=1),
    _case("max-overlapping", "MaxPool2d", randn(2, 2, 5, 5), kernel_size=3, stride=1),
    _case("max-ceil-mode", "MaxPool2d", randn(2, 2, 7, 6), kernel_size=3, stride=2, padding=1,
          ceil_mode=True),
    _case("max-dilation", "MaxPool2d", randn(2, 2, 7, 7), kernel_size=2, stride=1, dilation=2,
          padding=1),
    _case("max-non-square", "MaxPool2d", randn(2, 2, 6, 8), kernel_size=(2, 3), stride=(2, 1),
          padding=(1, 1)),
    _case("max-indices", "MaxPool2d", randn(2, 2, 7, 7), kernel_size=3, stride=2, padding=1,
          return_indices=True, ceil_mode=True),
    _case("max-unbatched", "MaxPool2d", randn(3, 5, 5), kernel_size=2, stride=1),
    _case("max-batch-of-one", "MaxPool2d", randn(1, 1, 4, 4), kernel_size=2),
    # --- MaxPool2d ties: the gradient goes to the first maximum (fd off: see above) ----------
    _case("max-ties-constant", "MaxPool2d", constant(2, 2, 5, 5), fd=False, kernel_size=3,
          stride=1, padding=1, return_indices=True),
    _case("max-ties-integers", "MaxPool2d", small_integers(2, 3, 7, 7), fd=False,
          kernel_size=3, stride=2, padding=1, return_indices=True),
    _case("max-ties-ceil-dilated", "MaxPool2d", constant(1, 2, 6, 7, value=-2.0), fd=False,
          kernel_size=2, stride=2, dilation=2, ceil_mode=True, return_indices=True),
    # --- AvgPool2d -------------------------------------------------------------------------
    _case("avg-2x2", "AvgPool2d", randn(2, 3, 6, 6), kernel_size=2),
    _case("avg-overlapping", "AvgPool2d", randn(2, 2, 5, 5), kernel_size=3, stride=1),
    _case("avg-pad-counted", "AvgPool2d", randn(2, 2, 6, 6), kernel_size=3, stride=2,
          padding=1),
    _case("avg-pad-not-counted", "AvgPool2d", randn(2, 2, 6, 6), kernel_size=3, stride=2,
          padding=1, count_include_pad=False),
    _case("avg-ceil-pad-counted", "AvgPool2d", randn(2, 2, 6, 7), kernel_size=3, stride=2,
          padding=1, ceil_mode=True),
    _case("avg-ceil-pad-not-counted", "AvgPool2d", randn(2, 2, 6, 7), kernel_size=3,
          stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    _case("avg-ceil-no-pad", "AvgPool2d", randn(2, 2, 5, 5), kernel_size=2, ceil_mode=True),
    _case("avg-divisor-override", "AvgPool2d", randn(2, 2, 6, 6), kernel_size=3, stride=2,
          padding=1, divisor_override=5),
    _case("avg-non-square", "AvgPool2d", randn(2, 2, 5, 7), kernel_size=(2, 3),
          stride=(1, 2), padding=(1, 1)),
    _case("avg-unbatched", "AvgPool2d", randn(3, 4, 4), kernel_size=2),
]

CONCEPT = Concept(
    name="pooling",
    family="vision",
    summary="2-D max and average pooling through im2col; ties routed as torch",
    compares="MaxPool2d: output, indices, grad of x (padding, ceil_mode, dilation, ties on "
             "constant and integer planes); AvgPool2d: output, grad of x (count_include_pad, "
             "ceil_mode, divisor_override)",
    witness="nn.MaxPool2d, nn.AvgPool2d",
    bench=Bench("MaxPool2d(2) and AvgPool2d(2) on x (32, 32, 28, 28)", cases=(
        _case("bench-max", "MaxPool2d", randn(32, 32, 28, 28), kernel_size=2),
        _case("bench-avg", "AvgPool2d", randn(32, 32, 28, 28), kernel_size=2))),
    cases=CASES,
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
