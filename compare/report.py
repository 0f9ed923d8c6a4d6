"""The result of one comparison (``Report``): data only; renderings live elsewhere.

A ``Report`` holds every ``Diff`` (``compare.metrics``) of every case, dtype and check of one
concept, its verdict, and the first point of divergence along named intermediates. It renders
as a text table (``compare.text``), as HTML (``compare.site.html``) and as figures
(``compare.plots``); those modules read a report and never import this one back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compare import text
from compare.metrics import (
    CHECKS,
    Diff,
    StepName,
    collapse_steps,
    json_float,
    kind_of,
    measure,
    normwise_error,
    primary_check,
    referee,
    split_step,
    verdict,
)

__all__ = ["CHECKS", "Diff", "Report", "StepName", "collapse_steps", "kind_of", "measure",
           "normwise_error", "primary_check", "referee", "split_step", "verdict"]


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
    def verdict(self) -> str:
        return verdict(self.passed, self.error)

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
        check = primary_check(self.diffs)
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

    def to_dict(self) -> dict[str, Any]:
        return {"concept": self.concept, "family": self.family, "summary": self.summary,
                "seed": self.seed, "passed": self.passed, "error": self.error or None,
                "diffs": [d.to_dict() for d in self.diffs], "divergence": self.divergence()}

    # --- renderings ---------------------------------------------------------------------------
    def summary_line(self) -> str:
        return text.summary_line(self)

    def divergence_table(self) -> str:
        return text.divergence_table(self)

    def table(self, failures_only: bool = False) -> str:
        return text.table(self, failures_only=failures_only)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:  # short: a notebook or a debugger shows this, not the table
        failing = len(self.failures)
        error = f", error={self.error[:60] + ('...' if len(self.error) > 60 else '')!r}" \
            if self.error else ""
        return (f"<Report {self.family}/{self.concept}: {self.verdict}, {len(self.diffs)} "
                f"tensors, {failing} failing, seed {self.seed}{error}>")

    def _repr_html_(self) -> str:
        from compare.site import html  # a notebook's rendering: the core does not load it
        return html.report_table(self)

    def plot(self, path: str | Path | None = None) -> Any:
        """This report's figure (error vs tolerance, heatmaps, error histograms).

        Without ``path``: the ``matplotlib.figure.Figure`` itself (a notebook displays it;
        pyplot and the backend are never touched). With ``path``: written there as PNG, and
        the path returned."""
        from compare import plots  # matplotlib is imported only when plotting
        if path is None:
            return plots.figure_for(self)
        return plots.plot_report(self, Path(path))


def _cell(d: Diff | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"exact": d.exact, "close": d.passed, "max_abs": json_float(d.max_abs)}
