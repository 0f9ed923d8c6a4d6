"""Metrics per tensor (``Diff``) and the result of one comparison (``Report``).

A ``Diff`` measures one named tensor of one case, in one dtype, for one check:

- ``numpy-vs-torch``   the NumPy twin (manual backward) against the torch twin (autograd)
- ``torch-vs-builtin`` the torch twin against the torch built-in (``F.layer_norm``, ...)
- ``numpy-vs-fd``      the NumPy backward against central finite differences, float64
- ``yours-vs-numpy``, ``yours-vs-torch``, ``yours-vs-fd``: a user's implementation against the
  NumPy twin, the torch twin and finite differences (``compare.verify``)

Its name says what the tensor is: ``out`` (a forward output), ``grad.input.x`` (the gradient
of input ``x``), ``grad.param.weight``, ``buffer.running_mean`` (state after forward),
``inter.h`` / ``grad.inter.h`` (a named intermediate and its gradient).
"""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

_KINDS = (
    ("grad.input.", "input gradient"),
    ("grad.param.", "parameter gradient"),
    ("grad.inter.", "intermediate gradient"),
    ("inter.", "intermediate"),
    ("buffer.", "buffer"),
    ("out", "output"),
)


_STEP = re.compile(r"^step(\d+)/(.+)$")


def split_step(name: str) -> tuple[str, int | None]:
    """``step17/param.0`` -> ("param.0", 17); a name without a step -> (name, None)."""
    match = _STEP.match(name)
    return (match.group(2), int(match.group(1))) if match else (name, None)


def collapse_steps(diffs: list[Diff]) -> list[tuple[Diff, str]]:
    """Multi-step diffs folded per tensor: for each (check, tensor) the first failing step,
    else the step closest to its bound, with a label saying how many steps it stands for.
    Tables and figures show one row per tensor; the JSON keeps every step."""
    groups: dict[tuple[str, str], list[Diff]] = {}
    for d in diffs:
        groups.setdefault((d.check, split_step(d.name)[0]), []).append(d)
    rows = []
    for (_, base), members in groups.items():
        if len(members) == 1:
            rows.append((members[0], members[0].name))
            continue
        failing = [d for d in members if not d.passed]
        shown = failing[0] if failing else max(members, key=lambda d: d.usage)
        steps = f"{len(members)} steps"
        if failing:
            listed = ", ".join(str(split_step(d.name)[1]) for d in failing[:5])
            steps += f", failing at step {listed}{' ...' if len(failing) > 5 else ''}"
        else:
            steps += f", closest to its bound at step {split_step(shown.name)[1]}"
        rows.append((shown, f"{base} [{steps}]"))
    return rows


def primary_check(diffs: list[Diff]) -> str:
    """The check a report is about: yours-vs-torch in a verification, else numpy-vs-torch."""
    return "yours-vs-torch" if any(d.check == "yours-vs-torch" for d in diffs) \
        else "numpy-vs-torch"


def kind_of(name: str) -> str:
    """What a tensor name denotes: output, input/parameter gradient, buffer, intermediate."""
    base = name.split("/")[-1]  # multi-step concepts prefix a step: "step3/grad.param.weight"
    for prefix, kind in _KINDS:
        if base.startswith(prefix):
            return kind
    return "value"


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
    diagnosis: str = ""  # for a failing tensor: what the difference looks like (compare.diagnose)
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
            "max_abs": _json_float(self.max_abs), "max_rel": _json_float(self.max_rel),
            "n_outside": self.n_outside, "size": self.size,
            "worst_index": None if self.worst_index is None else list(self.worst_index),
            "worst_values": None if self.worst_values is None
            else [_json_float(v) for v in self.worst_values],
            "exact": self.exact, "rtol": self.tolerance.rtol, "atol": self.tolerance.atol,
            "passed": self.passed, "note": self.note, "diagnosis": self.diagnosis or None,
            "referee": self.referee,
        }


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)  # JSON has no inf/nan


def normwise_error(a: np.ndarray, b: np.ndarray) -> float:
    """max|a - b| / max|b|: the error of ``a`` measured against reference ``b``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    same_nonfinite = (np.isnan(a) & np.isnan(b)) | (a == b)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(same_nonfinite, 0.0, np.abs(a - b))
    if not np.all(np.isfinite(diff)):
        return math.inf
    finite_b = b[np.isfinite(b)]
    scale = float(np.max(np.abs(finite_b))) if finite_b.size else 0.0
    return float(np.max(diff)) / max(scale, np.finfo(np.float64).tiny)


def measure(a: Any, b: Any, tolerance: Tolerance, *, case: str, dtype: str, check: str,
            name: str, keep_arrays: bool = True) -> Diff:
    """Compare ``a`` with reference ``b``. NaN or inf on one side only is a mismatch; the
    same NaN or the same infinity at the same position on both sides agrees."""
    a = np.asarray(a)
    b = np.asarray(b)
    common = dict(case=case, dtype=dtype, check=check, name=name, tolerance=tolerance)
    if a.shape != b.shape:
        return Diff(shape=tuple(b.shape), max_abs=math.inf, max_rel=math.inf,
                    n_outside=max(a.size, b.size), size=b.size, worst_index=None,
                    worst_values=None, exact=False, passed=False,
                    note=f"shape {tuple(a.shape)} vs {tuple(b.shape)}",
                    a=a if keep_arrays else None, b=b if keep_arrays else None, **common)
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    agree_nonfinite = (np.isnan(a64) & np.isnan(b64)) | (np.isinf(a64) & (a64 == b64))
    one_sided = ~agree_nonfinite & ~(np.isfinite(a64) & np.isfinite(b64))
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: masked out just below
        diff = np.where(np.isfinite(a64) & np.isfinite(b64), np.abs(a64 - b64), 0.0)
    finite_b = b64[np.isfinite(b64)]
    scale = float(np.max(np.abs(finite_b))) if finite_b.size else 0.0
    bound = tolerance.bound(scale)
    max_abs = float(np.max(diff)) if diff.size else 0.0
    n_outside = int(np.count_nonzero(diff > bound) + np.count_nonzero(one_sided))
    note = ""
    if one_sided.any():
        max_abs = math.inf
        note = f"{int(one_sided.sum())} element(s) NaN/inf on one side only"
    max_rel = max_abs / max(scale, np.finfo(np.float64).tiny) if max_abs else 0.0
    worst_index = worst_values = None
    if diff.size:
        badness = np.where(one_sided, math.inf, diff)
        flat = int(np.argmax(badness))
        worst_index = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
        worst_values = (float(a64.reshape(-1)[flat]), float(b64.reshape(-1)[flat]))
    return Diff(shape=tuple(b.shape), max_abs=max_abs, max_rel=max_rel, n_outside=n_outside,
                size=b.size, worst_index=worst_index, worst_values=worst_values,
                exact=bool(np.array_equal(a64, b64, equal_nan=True)),
                passed=n_outside == 0, scale=scale, note=note,
                a=a if keep_arrays else None, b=b if keep_arrays else None, **common)


def referee(numpy_value: Any, torch_value: Any, truth: Any) -> dict[str, Any]:
    """Which float32 twin is closer to the float64 result computed from the same data."""
    errors = {"numpy": normwise_error(numpy_value, truth),
              "torch": normwise_error(torch_value, truth)}
    if errors["numpy"] == errors["torch"]:
        closer = "tie"
    else:
        closer = min(errors, key=errors.get)
    return {"numpy_vs_float64": _json_float(errors["numpy"]),
            "torch_vs_float64": _json_float(errors["torch"]), "closer": closer}


@dataclass
class Report:
    """The result of one concept's comparison: every diff of every case, dtype and check."""

    concept: str
    family: str
    summary: str
    seed: int
    diffs: list[Diff] = field(default_factory=list)
    error: str = ""  # set when a case could not run at all (e.g. an exception in a twin)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.error and bool(self.diffs) and all(d.passed for d in self.diffs)

    @property
    def failures(self) -> list[Diff]:
        return [d for d in self.diffs if not d.passed]

    def diff(self, name: str, *, case: str | None = None, dtype: str | None = None,
             check: str = "numpy-vs-torch") -> Diff:
        """The one diff with this name (narrowed by case/dtype/check); KeyError if not one."""
        found = [d for d in self.diffs if d.name == name and d.check == check
                 and (case is None or d.case == case) and (dtype is None or d.dtype == dtype)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} diffs named {name!r} (case={case}, dtype={dtype}, "
                           f"check={check}) in the {self.concept} report")
        return found[0]

    def groups(self) -> list[tuple[tuple[str, str], list[Diff]]]:
        """Diffs grouped by (case, dtype), in the order they were produced."""
        grouped: dict[tuple[str, str], list[Diff]] = {}
        for d in self.diffs:
            grouped.setdefault((d.case, d.dtype), []).append(d)
        return list(grouped.items())

    def divergence(self) -> list[dict[str, Any]]:
        """Per case and dtype with named intermediates: each one's forward value and gradient
        (forward order), the first intermediate whose value departs from the reference, and
        the first whose gradient departs walking back from the output -- where a bug starts."""
        check = self._primary_check()
        tables = []
        for (case, dtype), diffs in self.groups():
            rows: dict[str, dict[str, Diff | None]] = {}
            for d in diffs:
                if d.check != check or not d.name.startswith(("inter.", "grad.inter.")):
                    continue
                key = "gradient" if d.name.startswith("grad.") else "forward"
                name = d.name.split("inter.", 1)[1]
                rows.setdefault(name, {"forward": None, "gradient": None})[key] = d
            if not rows:
                continue
            order = list(rows)
            first_forward = next((n for n in order if rows[n]["forward"] is not None
                                  and not rows[n]["forward"].passed), None)
            first_backward = next((n for n in reversed(order) if rows[n]["gradient"] is not None
                                   and not rows[n]["gradient"].passed), None)
            tables.append({"case": case, "dtype": dtype, "check": check,
                           "first_forward": first_forward, "first_backward": first_backward,
                           "rows": [{"name": n, **{k: _cell(v) for k, v in rows[n].items()}}
                                    for n in order]})
        return tables

    def divergence_table(self) -> str:
        lines = []
        for t in self.divergence():
            lines.append(f"\nfirst point of divergence: case {t['case']!r}, {t['dtype']} "
                         f"({t['check']})")
            lines.append(f"  {'intermediate':<18} {'forward: exact close max_diff':<32} "
                         f"gradient: exact close max_diff")
            for row in t["rows"]:
                cells = [_cell_text(row[k]) for k in ("forward", "gradient")]
                lines.append(f"  {row['name']:<18} {cells[0]:<32} {cells[1]}")
            lines.append("  the forward pass first departs at: "
                         + (t["first_forward"] or "nowhere (every intermediate matches)"))
            lines.append("  the backward pass first departs at: "
                         + (f"{t['first_backward']} (walking back from the output)"
                            if t["first_backward"] else "nowhere (every gradient matches)"))
        return "\n".join(lines)

    def summary_line(self) -> str:
        n_fail = len(self.failures)
        verdict = "agree" if self.passed else ("ERROR" if self.error else "MISMATCH")
        check = self._primary_check()
        worst = {}
        for d in self.diffs:  # tensors held to an absolute bound (true value 0) are left out
            if d.check == check and not d.tolerance.atol:
                worst[d.dtype] = max(worst.get(d.dtype, 0.0), d.max_rel)
        errors = ", ".join(f"{dtype} {value:.1e}" for dtype, value in worst.items())
        closest = max((d for d in self.diffs if d.check == check), key=lambda d: d.usage,
                      default=None)
        usage = "" if closest is None else (f"; closest to its bound: {closest.name} at "
                                            f"{100 * closest.usage:.2g}% ({closest.dtype})")
        return (f"{self.family}/{self.concept}: {verdict} -- {len(self.diffs)} tensors compared, "
                f"{n_fail} outside tolerance; worst {check} normwise error: "
                f"{errors or 'none'}{usage}")

    def _primary_check(self) -> str:
        return primary_check(self.diffs)

    def table(self) -> str:
        lines = [f"{self.family}/{self.concept} -- {self.summary} (seed {self.seed})"]
        if self.error:
            lines.append(f"  error: {self.error}")
        header = (f"  {'check':<16} {'tensor':<28} {'shape':<14} {'exact':<5} {'max_abs':>9} "
                  f"{'max_rel':>9} {'rtol':>7} {'outside':>8}  ok")
        for (case, dtype), diffs in self.groups():
            lines.append(f"\ncase {case!r}, {dtype}")
            with_referee = any(d.referee for d in diffs)
            lines.append(header + ("   closer to float64" if with_referee else ""))
            for d, label in collapse_steps(diffs):
                row = (f"  {d.check:<16} {label:<28} {_shape(d.shape):<14} "
                       f"{'yes' if d.exact else 'no':<5} {d.max_abs:>9.2e} {d.max_rel:>9.2e} "
                       f"{d.tolerance.rtol:>7.0e} {d.n_outside:>8}  {'ok' if d.passed else 'FAIL'}")
                if d.referee:
                    r = d.referee
                    row += (f"   {r['closer']} (numpy {_num(r['numpy_vs_float64'])}, "
                            f"torch {_num(r['torch_vs_float64'])})")
                if d.tolerance.atol:
                    row += f"   [atol {d.tolerance.atol:.0e}]"
                if d.note:
                    row += f"   [{d.note}]"
                if d.diagnosis:
                    row += f"\n      diagnosis: {d.diagnosis}"
                elif not d.passed and d.worst_index is not None and d.worst_values is not None:
                    row += (f"   worst at {list(d.worst_index)}: "
                            f"{d.worst_values[0]:.6g} vs {d.worst_values[1]:.6g}")
                lines.append(row)
        if not self.passed and self.divergence():
            lines.append(self.divergence_table())
        lines.append("\n" + self.summary_line())
        return "\n".join(lines)

    __str__ = table

    def to_dict(self) -> dict[str, Any]:
        return {"concept": self.concept, "family": self.family, "summary": self.summary,
                "seed": self.seed, "passed": self.passed, "error": self.error or None,
                "diffs": [d.to_dict() for d in self.diffs], "divergence": self.divergence()}

    def _repr_html_(self) -> str:
        verdict = "agree" if self.passed else "MISMATCH"
        rows = []
        for d in self.diffs:
            colour = "#e6ffe6" if d.passed else "#ffe6e6"
            rows.append(
                f"<tr style='background:{colour}'><td>{html.escape(d.case)}</td><td>{d.dtype}</td>"
                f"<td>{d.check}</td><td><code>{html.escape(d.name)}</code></td>"
                f"<td>{_shape(d.shape)}</td><td>{'yes' if d.exact else 'no'}</td>"
                f"<td>{d.max_abs:.2e}</td><td>{d.max_rel:.2e}</td><td>{d.tolerance.rtol:.0e}</td>"
                f"<td>{d.n_outside}</td><td>{'ok' if d.passed else 'FAIL'}</td></tr>")
        head = "".join(f"<th>{h}</th>" for h in ("case", "dtype", "check", "tensor", "shape",
                                                  "exact", "max_abs", "max_rel", "rtol",
                                                  "outside", "ok"))
        error = f"<p>error: {html.escape(self.error)}</p>" if self.error else ""
        return (f"<h4>{html.escape(self.family)}/{html.escape(self.concept)}: {verdict}</h4>"
                f"<p>{html.escape(self.summary)}</p>{error}"
                f"<table><tr>{head}</tr>{''.join(rows)}</table>")

    def plot(self, path: str | Path) -> Path:
        """Write this report's figure (heatmaps, error histograms, error vs tolerance) as PNG."""
        from compare.plots import plot_report  # matplotlib is imported only when plotting
        return plot_report(self, Path(path))


def _cell(d: Diff | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"exact": d.exact, "close": d.passed, "max_abs": _json_float(d.max_abs)}


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    return (f"{'yes' if cell['exact'] else 'no':<5} {'yes' if cell['close'] else 'NO':<5} "
            f"{_num(cell['max_abs'])}")


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ",".join(str(s) for s in shape) + ")"


def _num(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:.1e}"
