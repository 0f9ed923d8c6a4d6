"""Per-dtype default tolerances: the one place they live.

A tensor agrees when ``max|a - b| <= atol + rtol * max|b|``: a *normwise* test. Elementwise
relative error is meaningless where a gradient cancels to nearly zero; the normwise error
measures each element against the size of the whole tensor, which is how rounding behaves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

CHECK_NAMES = ("numpy-vs-torch", "torch-vs-builtin", "numpy-vs-fd")


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float = 0.0

    def bound(self, reference_scale: float) -> float:
        return self.atol + self.rtol * reference_scale


# float64 is the exactness check: the same formulas in a different order differ by a few
# hundred ulps at most (eps = 2.2e-16), far below 1e-10.
# float32 is the realism check (eps = 1.2e-7): reductions over a few hundred elements and
# cancellations in normalization backward passes cost up to a few hundred ulps, so 1e-4.
DEFAULT = {
    "float64": Tolerance(rtol=1e-10),
    "float32": Tolerance(rtol=1e-4),
}

# Central differences in float64 with step h: truncation error ~h^2 |f'''| ~ 1e-12 and
# rounding error ~eps |L| / h ~ 1e-10 for losses of order one, so analytic and numeric
# gradients agree to about 1e-8 normwise; 1e-6 leaves room for curvature without hiding a
# wrong backward (those are off by O(1)).
FINITE_DIFFERENCE_STEP = 1e-6
FINITE_DIFFERENCE = Tolerance(rtol=1e-6)
DEFAULT["fd"] = FINITE_DIFFERENCE  # a Case or Concept may override it under the key "fd"

DTYPES = {"float64": np.float64, "float32": np.float32}


class Scope(NamedTuple):
    """Where an override applies: a check (or every check), a dtype or "fd", a tensor (or
    every tensor). Written as a string key ``"[check:]dtype[:tensor]"`` --
    ``"torch-vs-builtin:float32"``, ``"float64:grad.param.b1"`` -- or built directly,
    ``Scope("float32", check="numpy-vs-torch")``; both forms mean the same."""

    dtype: str
    check: str | None = None
    tensor: str | None = None

    @classmethod
    def parse(cls, key: str | Scope) -> Scope:
        if isinstance(key, Scope):
            return key
        check, _, rest = key.partition(":") if key.split(":")[0] in CHECK_NAMES \
            else (None, "", key)
        dtype, _, tensor = rest.partition(":")
        if dtype not in (*DTYPES, "fd"):
            raise ValueError(f"tolerance key {key!r}: expected '[check:]dtype[:tensor]' with a "
                             f"dtype in {(*DTYPES, 'fd')} and a check in {CHECK_NAMES}")
        return cls(dtype, check, tensor or None)

    def __str__(self) -> str:
        return ":".join(p for p in (self.check, self.dtype, self.tensor) if p)
