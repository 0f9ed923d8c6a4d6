"""``dualgrad report DIR``: a static HTML report, one page per concept plus an index.

Each page shows the verdict, the NumPy and the PyTorch code side by side, the report's table
and its figures. Plain HTML and PNG files: open ``DIR/index.html`` in any browser, no server.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compare.metrics import verdict
from compare.text import shape_text

if TYPE_CHECKING:  # types only: the report imports this module for its _repr_html_
    from compare.concept import Concept
    from compare.report import Report

_STYLE = """
body { font-family: sans-serif; margin: 2em; }
.code { display: flex; gap: 1em; }
.code > div { flex: 1; min-width: 0; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 12px; }
table { border-collapse: collapse; font-size: 12px; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
.agree { color: #1a7f37; } .mismatch { color: #cf222e; }
img { max-width: 100%; }
"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_STYLE}</style></head><body>{body}</body></html>")


def _verdict(report: Report) -> str:
    word = verdict(report.passed, report.error)
    return f"<span class='{'agree' if report.passed else 'mismatch'}'>{word}</span>"


def report_table(report: Any) -> str:
    """A report as one HTML table (a notebook's ``_repr_html_``)."""
    rows = []
    for d in report.diffs:
        colour = "#e6ffe6" if d.passed else "#ffe6e6"
        cells = (d.case, d.dtype, d.check, d.name, shape_text(d.shape),
                 "yes" if d.exact else "no", f"{d.max_abs:.2e}", f"{d.max_rel:.2e}",
                 f"{d.tolerance.rtol:.0e}", str(d.n_outside), "ok" if d.passed else "FAIL")
        rows.append(f"<tr style='background:{colour}'>"
                    + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("case", "dtype", "check", "tensor", "shape",
                                              "exact", "max_abs", "max_rel", "rtol",
                                              "outside", "ok"))
    error = f"<p>error: {html.escape(report.error)}</p>" if report.error else ""
    return (f"<h4>{html.escape(report.family)}/{html.escape(report.concept)}: "
            f"{verdict(report.passed, report.error)}</h4><p>{html.escape(report.summary)}</p>"
            f"{error}<table><tr>{head}</tr>{''.join(rows)}</table>")


def concept_page(concept: Concept, report: Report, figures: Sequence[Path]) -> str:
    root = concept.source_path("numpy_impl").parent.parent.parent
    columns = []
    for tree in ("numpy_impl", "torch_impl"):
        path = concept.source_path(tree)
        columns.append(f"<div><h3>{html.escape(str(path.relative_to(root)))}</h3>"
                       f"<pre>{html.escape(path.read_text())}</pre></div>")
    images = "".join(f"<p><img src='{html.escape(p.name)}' alt='{html.escape(p.stem)}'></p>"
                     for p in figures)
    error = f"<p class='mismatch'>{html.escape(report.error)}</p>" if report.error else ""
    body = (f"<p><a href='index.html'>all concepts</a></p>"
            f"<h1>{html.escape(concept.qualified_name)}: {_verdict(report)}</h1>"
            f"<p>{html.escape(concept.summary)}. Compared: {html.escape(concept.compares)}. "
            f"Built-in witness: {html.escape(concept.witness or 'none')}.</p>{error}"
            f"<h2>The code, side by side</h2><div class='code'>{''.join(columns)}</div>"
            f"<h2>Figures</h2>{images}"
            f"<h2>Every tensor</h2><pre>{html.escape(report.table())}</pre>")
    return _page(concept.qualified_name, body)


def index_page(rows: Sequence[tuple[Concept, Report]]) -> str:
    items = "".join(
        f"<tr><td>{html.escape(c.family)}</td><td><a href='{html.escape(c.name)}.html'>"
        f"{html.escape(c.name)}</a></td><td>{html.escape(c.summary)}</td>"
        f"<td>{_verdict(r)}</td><td>{len(r.diffs)}</td><td>{len(r.failures)}</td></tr>"
        for c, r in rows)
    body = ("<h1>dualgrad: every concept, NumPy by hand vs PyTorch autograd</h1>"
            "<table><tr><th>family</th><th>concept</th><th>summary</th><th>verdict</th>"
            f"<th>tensors</th><th>outside tolerance</th></tr>{items}</table>")
    return _page("dualgrad report", body)
