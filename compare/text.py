"""A ``Report`` as text: the table per case and dtype, the divergence table, the summary line.

Reads a report (any object with ``diffs``, ``error``, ``passed``, ``divergence()`` ...);
imports nothing from ``compare.report``, so the data model and its renderings form no cycle.
"""
from __future__ import annotations

from typing import Any

from compare.metrics import collapse_steps, primary_check, verdict


def summary_line(report: Any) -> str:
    """One line: verdict, counts, the worst primary-check error per dtype and -- for a run that
    agrees -- the tensor closest to its bound (a failing run's usage is no margin: left out)."""
    check = primary_check(report.diffs)
    worst: dict[str, float] = {}
    for d in report.diffs:  # tensors held to an absolute bound (true value 0) are left out
        if d.check == check and not d.tolerance.atol:
            worst[d.dtype] = max(worst.get(d.dtype, 0.0), d.max_rel)
    errors = ", ".join(f"{dtype} {value:.1e}" for dtype, value in worst.items())
    closest = max((d for d in report.diffs if d.check == check), key=lambda d: d.usage,
                  default=None)
    usage = ""
    if report.passed and closest is not None:
        usage = (f"; closest to its bound: {closest.name} at {100 * closest.usage:.2g}% "
                 f"({closest.dtype})")
    return (f"{report.family}/{report.concept}: {verdict(report.passed, report.error)} -- "
            f"{len(report.diffs)} tensors compared, {len(report.failures)} outside tolerance; "
            f"worst {check} normwise error: {errors or 'none'}{usage}")


def divergence_table(report: Any) -> str:
    lines = []
    for t in report.divergence():
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


def table(report: Any, failures_only: bool = False) -> str:
    """The full table: a header per case and dtype, one row per tensor and check.
    ``failures_only`` keeps only the failing rows (and the groups that have one)."""
    lines = [f"{report.family}/{report.concept} -- {report.summary} (seed {report.seed})"]
    if report.error:
        lines.append(f"  error: {report.error}")
    header = (f"  {'check':<16} {'tensor':<28} {'shape':<14} {'exact':<5} {'max_abs':>9} "
              f"{'max_rel':>9} {'rtol':>7} {'outside':>8}  ok")
    for (case, dtype), diffs in report.groups():
        if failures_only:
            diffs = [d for d in diffs if not d.passed]
            if not diffs:
                continue
        lines.append(f"\ncase {case!r}, {dtype}")
        with_referee = any(d.referee for d in diffs)
        lines.append(header + ("   closer to float64" if with_referee else ""))
        for d, label in collapse_steps(diffs):
            row = (f"  {d.check:<16} {label:<28} {shape_text(d.shape):<14} "
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
    if not report.passed and report.divergence():
        lines.append(divergence_table(report))
    lines.append("\n" + summary_line(report))
    return "\n".join(lines)


def shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ",".join(str(s) for s in shape) + ")"


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    return (f"{'yes' if cell['exact'] else 'no':<5} {'yes' if cell['close'] else 'NO':<5} "
            f"{_num(cell['max_abs'])}")


def _num(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:.1e}"
