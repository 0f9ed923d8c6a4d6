"""Metrics per tensor: the one place a difference is measured and a verdict is worded.

A ``Diff`` measures one named tensor of one case, in one dtype, for one check:

- ``numpy-vs-torch``   the NumPy twin (manual backward) against the torch twin (autograd)
- ``torch-vs-builtin`` the torch twin against the torch built-in (``F.layer_norm``, ...)
- ``numpy-vs-fd``      the NumPy backward against central finite differences, float64
- ``yours-vs-numpy``, ``yours-vs-torch``, ``yours-vs-fd``: a user's implementation against the
  NumPy twin, the torch twin and finite differences (``compare.verify``)

Its name says what the tensor is: ``out`` (a forward output), ``grad.input.x`` (the gradient
of input ``x``), ``grad.param.weight``, ``buffer.running_mean`` (state after forward),
``inter.h`` / ``grad.inter.h`` (a named intermediate and its gradient); multi-step concepts
prefix the step, ``step3/grad.param.w`` (``StepName``).

The difference is NaN-aware: the same NaN, or the same infinity, at the same position on both
sides agrees; NaN or inf on one side only is a mismatch, never silently equal. The error is
*normwise*, ``max|a - b| / max|b|``: elementwise relative error is meaningless where a gradient
cancels to nearly zero, while the normwise error measures each element against the size of the
whole tensor, which is how rounding behaves.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from compare.tolerances import Tolerance

CHECKS = {
    "numpy-vs-torch": "NumPy manual backward vs torch autograd",
    "torch-vs-builtin": "torch twin vs the torch built-in",
    "numpy-vs-fd": "NumPy backward vs central finite differences (float64)",
    "yours-vs-numpy": "your implementation vs the NumPy twin",
    "yours-vs-torch": "your implementation vs the torch twin",
    "yours-vs-fd": "your backward vs central finite differences (float64)",
}

_KINDS = (("grad.input.", "input gradient"), ("grad.param.", "parameter gradient"),
          ("grad.inter.", "intermediate gradient"), ("inter.", "intermediate"),
          ("buffer.", "buffer"), ("input.", "input"), ("out", "output"))
_STEP = re.compile(r"^step(\d+)/(.+)$")
_TINY = np.finfo(np.float64).tiny


class StepName(NamedTuple):
    """A tensor name split into its base and its step: ``step17/param.0`` -> ("param.0", 17)."""

    base: str
    step: int | None

    @classmethod
    def parse(cls, name: str) -> StepName:
        match = _STEP.match(name)
        return cls(match.group(2), int(match.group(1))) if match else cls(name, None)

    def __str__(self) -> str:
        return self.base if self.step is None else f"step{self.step}/{self.base}"


def split_step(name: str) -> tuple[str, int | None]:
    """``step17/param.0`` -> ("param.0", 17); a name without a step -> (name, None)."""
    return tuple(StepName.parse(name))


def kind_of(name: str) -> str:
    """What a tensor name denotes: output, input/parameter gradient, buffer, intermediate."""
    base = StepName.parse(name).base
    for prefix, kind in _KINDS:
        if base.startswith(prefix):
            return kind
    return "value"


def verdict(passed: bool, error: str = "") -> str:
    """The one word a run ends with: agree, ERROR (a case could not run), MISMATCH."""
    return "agree" if passed else ("ERROR" if error else "MISMATCH")


def primary_check(diffs: list[Diff]) -> str:
    """The check a report is about: yours-vs-torch in a verification, else numpy-vs-torch."""
    return "yours-vs-torch" if any(d.check == "yours-vs-torch" for d in diffs) \
        else "numpy-vs-torch"


def json_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)  # JSON has no inf/nan


@dataclass
class Diff:
    case: str
    dtype: str
    check: str
    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    n_outside: int
    size: int
    worst_index: tuple[int, ...] | None
    worst_values: tuple[float, float] | None  # (a, b) at the worst element
    exact: bool
    tolerance: Tolerance
    passed: bool
    scale: float = 0.0  # max|b| over finite elements: what the normwise error is relative to
    note: str = ""
    diagnosis: str = ""  # failing tensor: what the difference looks like (compare.verify.diagnose)
    referee: dict[str, Any] | None = None  # float32 only: both twins' error against float64
    a: np.ndarray | None = field(default=None, repr=False)
    b: np.ndarray | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return kind_of(self.name)

    @property
    def bound(self) -> float:
        """The largest |a - b| this tensor may have: atol + rtol * max|b|."""
        return self.tolerance.bound(self.scale)

    @property
    def usage(self) -> float:
        """max|a - b| as a fraction of its bound: <= 1 passes (inf: error on a zero bound)."""
        if self.max_abs == 0:
            return 0.0
        return self.max_abs / self.bound if self.bound > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case, "dtype": self.dtype, "check": self.check,
            "name": self.name, "kind": self.kind, "shape": list(self.shape),
            "max_abs": json_float(self.max_abs), "max_rel": json_float(self.max_rel),
            "n_outside": self.n_outside, "size": self.size,
            "worst_index": None if self.worst_index is None else list(self.worst_index),
            "worst_values": None if self.worst_values is None
            else [json_float(v) for v in self.worst_values],
            "exact": self.exact, "rtol": self.tolerance.rtol, "atol": self.tolerance.atol,
            "passed": self.passed, "note": self.note, "diagnosis": self.diagnosis or None,
            "referee": self.referee,
        }


def difference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """|a - b| elementwise in float64 (0 where both are the same NaN or infinity), the mask of
    elements NaN or inf on one side only, and the scale max|b| over b's finite elements."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        diff = np.asarray(np.abs(a64 - b64))  # an array even for 0-d inputs
    if np.isfinite(diff).all():  # the usual case: both sides finite (a NaN or inf makes a - b so)
        return diff, np.zeros(diff.shape, dtype=bool), float(np.max(np.abs(b64), initial=0.0))
    both_finite = np.isfinite(a64) & np.isfinite(b64)
    same = (np.isnan(a64) & np.isnan(b64)) | (np.isinf(a64) & (a64 == b64))
    diff[~both_finite] = 0.0  # inf - inf and NaN masked; an overflow of finite values stays inf
    finite_b = b64[np.isfinite(b64)]
    scale = float(np.max(np.abs(finite_b))) if finite_b.size else 0.0
    return diff, ~same & ~both_finite, scale


def normwise_error(a: np.ndarray, b: np.ndarray) -> float:
    """max|a - b| / max|b|: the error of ``a`` measured against reference ``b`` (inf where the
    shapes differ or a NaN/inf is one-sided)."""
    if np.shape(a) != np.shape(b):
        return math.inf
    if np.size(b) == 0:
        return 0.0
    diff, one_sided, scale = difference(a, b)
    if one_sided.any() or not np.all(np.isfinite(diff)):
        return math.inf
    with np.errstate(all="ignore"):  # an error on a reference of ~0 overflows to inf: meant
        return float(np.max(diff) / max(scale, _TINY))


def measure(a: Any, b: Any, tolerance: Tolerance, *, case: str, dtype: str, check: str,
            name: str, keep_arrays: bool = True) -> Diff:
    """Compare ``a`` with reference ``b`` under ``tolerance`` (max|a - b| <= atol + rtol max|b|)."""
    a, b = np.asarray(a), np.asarray(b)
    arrays = dict(a=a, b=b) if keep_arrays else {}
    common = dict(case=case, dtype=dtype, check=check, name=name, tolerance=tolerance, **arrays)
    if a.shape != b.shape:
        return Diff(shape=tuple(b.shape), max_abs=math.inf, max_rel=math.inf,
                    n_outside=max(a.size, b.size), size=b.size, worst_index=None,
                    worst_values=None, exact=False, passed=False,
                    note=f"shape {tuple(a.shape)} vs {tuple(b.shape)}", **common)
    diff, one_sided, scale = difference(a, b)
    bound = tolerance.bound(scale)
    max_abs = float(np.max(diff)) if diff.size else 0.0
    n_outside = int(np.count_nonzero(diff > bound) + np.count_nonzero(one_sided))
    note = ""
    if one_sided.any():
        max_abs = math.inf
        note = f"{int(one_sided.sum())} element(s) NaN/inf on one side only"
    with np.errstate(all="ignore"):
        max_rel = float(max_abs / max(scale, _TINY)) if max_abs else 0.0
    worst_index = worst_values = None
    if diff.size:
        flat = int(np.argmax(np.where(one_sided, math.inf, diff) if note else diff))
        worst_index = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
        worst_values = (float(a.reshape(-1)[flat]), float(b.reshape(-1)[flat]))
    # exact: equal everywhere (the same NaN or inf counting as equal): no difference left
    return Diff(shape=tuple(b.shape), max_abs=max_abs, max_rel=max_rel, n_outside=n_outside,
                size=b.size, worst_index=worst_index, worst_values=worst_values,
                exact=max_abs == 0, passed=n_outside == 0, scale=scale, note=note, **common)


def referee(numpy_value: Any, torch_value: Any, truth: Any) -> dict[str, Any]:
    """Which float32 twin is closer to the float64 result computed from the same data."""
    errors = {"numpy": normwise_error(numpy_value, truth),
              "torch": normwise_error(torch_value, truth)}
    closer = "tie" if errors["numpy"] == errors["torch"] else min(errors, key=errors.get)
    return {"numpy_vs_float64": json_float(errors["numpy"]),
            "torch_vs_float64": json_float(errors["torch"]), "closer": closer}


def collapse_steps(diffs: list[Diff]) -> list[tuple[Diff, str]]:
    """Multi-step diffs folded per tensor: for each (check, tensor) the first failing step,
    else the step closest to its bound, with a label saying how many steps it stands for.
    Tables and figures show one row per tensor; the JSON keeps every step."""
    groups: dict[tuple[str, str], list[Diff]] = {}
    for d in diffs:
        groups.setdefault((d.check, StepName.parse(d.name).base), []).append(d)
    rows = []
    for (_, base), members in groups.items():
        if len(members) == 1:
            rows.append((members[0], members[0].name))
            continue
        failing = [d for d in members if not d.passed]
        shown = failing[0] if failing else max(members, key=lambda d: d.usage)
        steps = f"{len(members)} steps"
        if failing:
            listed = ", ".join(str(StepName.parse(d.name).step) for d in failing[:5])
            steps += f", failing at step {listed}{' ...' if len(failing) > 5 else ''}"
        else:
            steps += f", closest to its bound at step {StepName.parse(shown.name).step}"
        rows.append((shown, f"{base} [{steps}]"))
    return rows
