"""Compare ``LayerNorm``: standardize over the trailing dims, then y = gamma * xhat + beta.

Covers one and two normalized dims, no affine, gamma without beta, a batch of one, a single
normalized element (xhat = 0: y = beta, dL/dx = 0), constant rows (var = 0: only eps keeps
1/sqrt(var + eps) finite) and a large common offset (x - mu cancels the leading digits).

Witness: ``torch.nn.LayerNorm`` (``F.layer_norm``). Run: ``python -m compare.layers.layernorm``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import nn

from compare.concept import Bench, Case, Concept, Draw, randn
from compare.tolerances import Tolerance
from numpy_impl.layers import layernorm as numpy_twin
from torch_impl.layers import layernorm as torch_twin


def constant_rows(rows: int, features: int) -> Draw:
    """Rows 0, 2, 4, ... hold one repeated value each; odd rows are ordinary noise.

    The repeated value c is a multiple of 1/64 with |c| <= 1/8, for two reasons measured at
    seed 92. A multiple of 1/64 sums exactly in float32 and float64 in any order, so the mean
    is c itself and x - mean exactly 0 in the twins and in the built-in alike (an arbitrary c
    leaves an ulp of the mean that depends on the summation order, times 1/sqrt(eps) = 316 in
    xhat). And nn.LayerNorm's float32 backward loses accuracy in proportion to c, as if it
    formed xhat as rstd x - rstd mean (316 c cancelling against itself): the same data gave
    dgamma 4.5e-8 from the exact one with c = 0 and 1.7e-4 with c = 3.25 (1.9e-4 relative,
    over the default bound); |c| <= 1/8 keeps it 26 times below that."""
    def draw(rng: np.random.Generator) -> np.ndarray:
        x = rng.standard_normal((rows, features))
        x[::2] = rng.integers(-8, 9, (len(x[::2]), 1)) / 64          # (rows/2, 1) -> each row
        return x
    return draw


def _case(name: str, x: Draw, normalized_shape: int | tuple[int, ...], *, fd: bool = True,
          tolerance: Mapping[str, Tolerance] | None = None, **options: Any) -> Case:
    return Case(name, numpy=numpy_twin.LayerNorm, torch=torch_twin.LayerNorm,
                builtin=nn.LayerNorm, init=dict(normalized_shape=normalized_shape, **options),
                inputs=dict(x=x), fd=fd, tolerance=tolerance or {})


CONCEPT = Concept(
    name="layernorm",
    family="layers",
    summary="layer normalization over the trailing dims, y = gamma * xhat + beta",
    compares="output; grads of x, weight, bias",
    witness="nn.LayerNorm",
    bench=Bench("LayerNorm(512) on x (4096, 512)", cases=(_case("bench", randn(4096, 512), 512),)),
    cases=[
        _case("2d", randn(4, 6), 6),
        _case("3d-last-dim", randn(2, 3, 5), 5),
        _case("last-two-dims", randn(2, 3, 4), (3, 4)),
        _case("no-affine", randn(3, 5), 5, elementwise_affine=False),
        _case("affine-no-bias", randn(3, 5), 5, bias=False),
        _case("batch-of-one", randn(1, 8), 8),
        _case("one-feature", randn(5, 1), 1,
              # One element per sample: x - mu = 0, so y = beta and the x- and gamma-gradients
              # are exactly 0 -- as both twins compute. The built-in returns rounding residue
              # amplified by r = 1/sqrt(eps) ~ 316 (observed up to 1.5e-13 in float64 and
              # 1.3e-4 in float32 over 50 seeds), which no relative test against a zero tensor
              # can accept: an absolute floor above that residue, for the built-in witness only
              # (the twins are both exactly 0 and keep the default bound).
              tolerance={"torch-vs-builtin:float64": Tolerance(rtol=1e-10, atol=1e-12),
                         "torch-vs-builtin:float32": Tolerance(rtol=1e-4, atol=5e-4)}),
        _case("constant-rows", constant_rows(4, 6), 6),
        _case("large-offset", randn(3, 8, shift=1e4), 8,
              # Finite differences cannot resolve this case: with h = 1e-6 on x ~ 1e4 the step
              # actually taken, (x + h) - x, is off by up to ulp(1e4)/2 ~ 1e-12, i.e. ~1e-6 of h
              # -- the finite-difference tolerance itself (3e-6 observed). The backward is the
              # one every other case checks by finite differences; here the point is float32.
              fd=False,
              # In float32, x = 1e4 + N(0, 1) is stored to ulp(1e4) ~ 1e-3, and x - mu cancels
              # four of float32's seven digits: the problem's condition number is ~|x|/std(x)
              # ~ 1e4, so any float32 algorithm is off by ~1e4 * 1.2e-7 ~ 1.2e-3 relative.
              # Measured over seeds 0-59: numpy-vs-torch up to 2.5e-3 (grad.param.weight),
              # the built-in's kernel (another summation order) up to 3.0e-3 from the torch
              # twin. float64 is unaffected (ulp(1e4) ~ 2e-12) and keeps the default.
              tolerance={"numpy-vs-torch:float32": Tolerance(rtol=6e-3),
                         "torch-vs-builtin:float32": Tolerance(rtol=1e-2)}),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
