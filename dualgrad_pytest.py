"""dualgrad's pytest plugin: ``assert_matches`` as a function and as a fixture.

    from dualgrad_pytest import assert_matches

    def test_my_layernorm():
        assert_matches("layernorm", MyLayerNorm)              # fails with a readable message

    def test_my_gelu(assert_matches):                          # the same, as a fixture
        assert_matches("activations:GELU", MyGELU, dtype="float32", rtol=1e-4)

pytest loads this module in every session of an environment where dualgrad is installed, in
every project. So its name belongs to this distribution alone (a project may well have its own
``compare`` module), and loading it imports nothing of dualgrad: ``compare`` (and torch) are
imported only when a check runs.

A failure reads like ``torch.testing.assert_close``: a headline (how many tensors fail, which,
the worst with its diagnosis), then only the failing rows, then your ``msg``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

__all__ = ["assert_matches"]

_YOUR_CHECKS = ("yours-vs-numpy", "yours-vs-torch")  # finite differences keep their tolerance


def _retolerate(report: Any, rtol: float | None, atol: float | None) -> None:
    """Re-judge the checks against the references with the caller's rtol / atol (the finite
    difference check keeps its own: its error is the numerical derivative's, not yours)."""
    from compare.metrics import measure
    from compare.tolerances import Tolerance
    for i, d in enumerate(report.diffs):
        if d.check not in _YOUR_CHECKS or d.a is None or d.b is None:
            continue
        tolerance = Tolerance(rtol=d.tolerance.rtol if rtol is None else rtol,
                              atol=d.tolerance.atol if atol is None else atol)
        new = measure(d.a, d.b, tolerance, case=d.case, dtype=d.dtype, check=d.check,
                      name=d.name)
        new.diagnosis, new.referee = (d.diagnosis if not new.passed else ""), d.referee
        new.note = new.note or d.note
        report.diffs[i] = new


def failure_message(report: Any, impl_name: str, msg: str | None = None) -> str:
    """The assertion message: headline, worst tensor with its diagnosis, failing rows, msg."""
    failing = report.failures
    lines = []
    if report.error:
        lines.append(f"{impl_name} does not match the {report.concept} references: "
                     f"{report.error}")
    if failing:
        names = list(dict.fromkeys(d.name for d in failing))
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        lines.append(f"{impl_name} does not match the {report.concept} references: "
                     f"{len(failing)} of {len(report.diffs)} comparisons outside tolerance "
                     f"({len(names)} tensor{'s' if len(names) != 1 else ''}: {shown}).")
        worst = max(failing, key=lambda d: d.usage)
        where = f"case {worst.case!r}, {worst.dtype}, {worst.check}"
        bound = "inf" if not math.isfinite(worst.bound) else f"{worst.bound:.3g}"
        lines.append(f"Worst: {worst.name} ({where}): max abs difference {worst.max_abs:.3g} "
                     f"(allowed {bound}: rtol {worst.tolerance.rtol:g}, atol "
                     f"{worst.tolerance.atol:g}), normwise {worst.max_rel:.3g}, "
                     f"{worst.n_outside} of {worst.size} elements outside.")
        if worst.note:
            lines.append(f"Note: {worst.note}")
        if worst.diagnosis:
            lines.append(f"Diagnosis: {worst.diagnosis}")
        elif worst.worst_index is not None and worst.worst_values is not None:
            lines.append(f"At {list(worst.worst_index)}: yours {worst.worst_values[0]:.6g} vs "
                         f"reference {worst.worst_values[1]:.6g}")
        lines.append("\nFailing rows:\n" + report.table(failures_only=True))
    if not lines:  # no error, no failing diff, yet not passed: nothing was compared
        lines.append(f"{impl_name} was not compared with the {report.concept} references "
                     "(no case ran)")
    if msg:
        lines.append(f"\n{msg}")
    return "\n".join(lines)


def assert_matches(concept: Any, impl: Any, *, dtype: str = "float64", seed: int = 0,
                   rtol: float | None = None, atol: float | None = None,
                   cases: Sequence[str] | str | None = None, msg: str | None = None) -> None:
    """Verify ``impl`` against ``concept``'s references (see ``compare.verify``); raise an
    ``AssertionError`` when any tensor mismatches or the implementation fails to run.

    ``rtol`` / ``atol`` replace the tolerance of the checks against the NumPy and torch twins
    (|yours - reference| <= atol + rtol * max|reference|, normwise); ``cases`` runs only those
    cases; ``msg`` is appended to the failure message.
    """
    __tracebackhide__ = True  # pytest shows the message, not this frame
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not value >= 0 or math.isinf(value)):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    from compare.api import verify  # imported here: loading the plugin imports nothing
    report = verify(concept, impl, dtype=dtype, seed=seed, cases=cases)
    if rtol is not None or atol is not None:
        _retolerate(report, rtol, atol)
    if not report.passed:
        impl_name = getattr(impl, "__name__", None) or repr(impl)
        raise AssertionError(failure_message(report, impl_name, msg))


@pytest.fixture(name="assert_matches")
def assert_matches_fixture():
    """The ``assert_matches`` function, for tests that prefer a fixture to an import."""
    return assert_matches
