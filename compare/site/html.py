"""HTML renderings: the site's pages (``dualgrad report``) and a report in a notebook.

One way of rendering: jinja2 templates with autoescaping on, so every text a page shows (a
summary, a case name, a diagnosis, a file's code) is escaped; code is highlighted by pygments
(its CSS inlined: pages work from ``file://`` with no network) and laid out by role
(``compare.site.align``): NumPy ``forward`` beside torch ``forward`` in one grid row, so both start
at the same height. ``report_table`` renders a ``Report`` (failures first, their diagnoses
under them, passing rows folded with a count, the float64 referee of float32 runs); it is both
the concept page's comparison and ``Report._repr_html_``.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
from markupsafe import Markup

from compare.metrics import collapse_steps, primary_check, verdict
from compare.site.align import Piece, Row
from compare.text import shape_text, summary_line

_CSS = """
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --ok: #1a7f37; --bad: #cf222e;
        --bad-bg: #ffebe9; --code-bg: #f6f8fa; }
html { font-size: clamp(15px, 0.55vw + 9px, 26px); }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       margin: 0 auto; padding: 1rem 1.5rem 3rem; max-width: 110rem; line-height: 1.45; }
a { color: #0969da; }
h1 { font-size: 1.7rem; margin: 0.4rem 0; } h2 { font-size: 1.3rem; margin-top: 2rem; }
.agree { color: var(--ok); font-weight: 600; }
.mismatch, .error { color: var(--bad); font-weight: 600; }
.muted { color: var(--muted); }
code, pre, .code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
pre.doc { background: var(--code-bg); padding: 0.8rem 1rem; white-space: pre-wrap;
          overflow-wrap: anywhere; font-size: 0.9rem; border-radius: 6px; }
.repro { background: var(--code-bg); padding: 0.2rem 0.5rem; border-radius: 4px; }
.code { font-size: 0.8rem; }
.pair { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem;
        align-items: start; }
.titles { position: sticky; top: 0; background: white; z-index: 1;
          border-bottom: 1px solid var(--line); padding: 0.3rem 0; font-weight: 600; }
.role { font-family: system-ui, sans-serif; font-size: 0.95rem; margin: 1.1rem 0 0.3rem;
        color: var(--muted); border-bottom: 1px dashed var(--line); }
.pane { background: var(--code-bg); border-radius: 6px; padding: 0.4rem 0; min-width: 0; }
.pane.empty { background: transparent; }
.piece + .piece { border-top: 1px solid var(--line); margin-top: 0.4rem; padding-top: 0.4rem; }
.line { display: flex; }
.no { flex: none; width: 4.5ch; padding-right: 1ch; text-align: right; color: #8c959f;
      user-select: none; }
.src { flex: 1; min-width: 0; white-space: pre-wrap; overflow-wrap: anywhere;
       padding: 0 0.5rem 0 2ch; text-indent: -2ch; }  /* a wrapped line hangs 2 columns in */
.note { padding: 0.2rem 0.8rem; font-style: italic; color: #8250df; white-space: pre-wrap; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
td, th { border: 1px solid var(--line); padding: 0.15rem 0.45rem; text-align: left;
         vertical-align: top; }
th { background: var(--code-bg); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.fail td { background: var(--bad-bg); }
tr.diagnosis td { background: #fff8c5; font-style: italic; }
details { margin: 0.5rem 0; } summary { cursor: pointer; }
img { max-width: 100%; height: auto; border: 1px solid var(--line); margin: 0.5rem 0; }
.toc { font-size: 0.85rem; line-height: 1.8; }
table.index { width: 100%; table-layout: fixed; }
.index th:nth-child(1) { width: 11%; } .index th:nth-child(2) { width: 45%; }
.index th:nth-child(3), .index th:nth-child(4) { width: 7.5%; }
.index th:nth-child(5) { width: 19%; } .index th:nth-child(6) { width: 10%; }
.index td:nth-child(1) { overflow-wrap: anywhere; }
@media (max-width: 640px) { .pair { grid-template-columns: minmax(0, 1fr); } }
"""

_BASE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><style>{{ css }}</style></head>
<body>{% block body %}{% endblock %}</body></html>
"""

_REPORT = """<div class="report">
<p class="{{ 'agree' if report.passed else 'mismatch' }}">{{ headline }}</p>
{% if report.error %}<p class="error">error: {{ report.error }}</p>{% endif %}
{% if failing %}
<table class="comparison failures">{{ head }}
{% for r in failing %}{{ row(r) }}{% endfor %}
</table>{% endif %}
{% if passing %}
<details{% if not failing and open_passing %} open{% endif %}><summary>{{ passing|length }}
passing row{{ '' if passing|length == 1 else 's' }} (every tensor within its tolerance)</summary>
<table class="comparison passing">{{ head }}
{% for r in passing %}{{ row(r) }}{% endfor %}
</table></details>{% endif %}
{% for t in divergence %}
<p>First point of divergence: case <code>{{ t.case }}</code>, {{ t.dtype }} ({{ t.check }}):
the forward pass first departs at <b>{{ t.first_forward or "nowhere" }}</b>, the backward pass
(walking back from the output) at <b>{{ t.first_backward or "nowhere" }}</b>.</p>
<table><tr><th>intermediate</th><th>forward exact / close / max diff</th>
<th>gradient exact / close / max diff</th></tr>
{% for r in t.rows %}<tr><td>{{ r.name }}</td><td>{{ cell(r.forward) }}</td>
<td>{{ cell(r.gradient) }}</td></tr>{% endfor %}</table>
{% endfor %}
</div>"""

_ROW = """<tr class="{{ 'ok' if d.passed else 'fail' }}"><td>{{ d.case }}</td><td>{{ d.dtype }}</td>
<td>{{ d.check }}</td><td>{{ label }}</td><td>{{ shape }}</td>
<td>{{ 'yes' if d.exact else 'no' }}</td><td class="num">{{ num(d.max_abs) }}</td>
<td class="num">{{ num(d.max_rel) }}</td><td class="num">{{ bound }}</td>
<td class="num">{{ d.n_outside }}</td><td>{{ referee }}</td>
<td class="{{ 'agree' if d.passed else 'mismatch' }}">{{ 'ok' if d.passed else 'FAIL' }}</td></tr>
{% if not d.passed and (d.diagnosis or worst) %}<tr class="diagnosis"><td colspan="12">
{{ d.diagnosis or worst }}</td></tr>{% endif %}"""

_HEAD = ("<tr><th>case</th><th>dtype</th><th>check</th><th>tensor</th><th>shape</th>"
         "<th>exact</th><th>max abs</th><th>normwise error</th><th>tolerance</th>"
         "<th>outside</th><th>float64 referee: closer twin</th><th>ok</th></tr>")

_PAGE = """{% extends "base" %}{% block body %}
<p><a href="index.html">&larr; all concepts</a>
<span class="muted">/ {{ concept.family }}</span></p>
<h1>{{ concept.qualified_name }}:
<span class="{{ 'agree' if report.passed else 'mismatch' }}">{{ report.verdict }}</span></h1>
<p>{{ concept.summary }}.</p>
{% if concept.compares %}<p><b>Compared:</b> {{ concept.compares }}</p>{% endif %}
<p><b>Built-in witness:</b> {{ concept.witness or "none" }}.
<b>Reproduce:</b> <code class="repro">{{ command }}</code></p>
{% if math %}<h2>The math</h2><pre class="doc">{{ math }}</pre>{% endif %}
<h2>The code, aligned by role</h2>
<nav class="toc">{% for row in rows %}<a href="#{{ row.anchor }}">{{ row.role }}</a>
{%- if defined(row) %} <span class="muted">({% for name in defined(row) -%}
<code>def {{ name }}</code>{{ ", " if not loop.last }}
{%- endfor %})</span>{% endif %}
{{ " · " if not loop.last }}{% endfor %}</nav>
<div class="code">
<div class="pair titles"><div>NumPy, backward by hand: {{ numpy_title }}</div>
<div>PyTorch, autograd: {{ torch_title }}</div></div>
{% for row in rows %}
<div class="role" id="{{ row.anchor }}">{{ row.role }}</div>
<div class="pair" data-role="{{ row.role }}">
{{ pane("numpy", row.numpy, "") }}{{ pane("torch", row.torch, row.torch_note) }}
</div>{% endfor %}
</div>
<h2>The comparison</h2>{{ table }}
{% if figures or problem %}<h2>Figures</h2>
{% if problem %}<p class="error">{{ problem }}</p>{% endif %}
{% for f in figures %}<figure><img src='{{ f.src }}' alt='{{ f.alt }}'></figure>{% endfor %}
{% endif %}
<p class="muted">seed {{ report.seed }}; {{ "%.2f"|format(report.seconds) }} s to compare;
dualgrad {{ versions.dualgrad }}, numpy {{ versions.numpy }}, torch {{ versions.torch }}.</p>
{% endblock %}"""

_INDEX = """{% extends "base" %}{% block body %}
<h1>dualgrad: every concept, NumPy by hand vs PyTorch autograd</h1>
<p>Each concept is written twice -- in NumPy with a backward pass by hand, and in PyTorch
where autograd derives the backward -- and every output and gradient is compared.
{{ counts }}.</p>
<p class="muted">dualgrad {{ versions.dualgrad }}, numpy {{ versions.numpy }},
torch {{ versions.torch }}; seed {{ seed }}; built {{ date }}.</p>
{% for family, rows in families %}
<h2>{{ family }}</h2>
<table class="index"><tr><th>concept</th><th>summary</th><th>float64</th><th>float32</th>
<th>worst NumPy-vs-torch error</th><th>NumPy / torch time</th></tr>
{% for r in rows %}<tr><td><a href='{{ r.href }}'>{{ r.name }}</a></td><td>{{ r.summary }}</td>
{% for dtype in ("float64", "float32") %}<td class="{{ r.cls[dtype] }}">{{ r.word[dtype] }}</td>
{% endfor %}<td class="num">{{ r.worst }}</td><td class="num">{{ r.speed }}</td></tr>
{% endfor %}</table>{% endfor %}
{% endblock %}"""


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.DictLoader({"base": _BASE, "report": _REPORT, "row": _ROW,
                                  "page": _PAGE, "index": _INDEX}),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True)
    return env


@functools.lru_cache(maxsize=1)
def css() -> Markup:
    """The pages' style sheet: layout plus pygments' colours, scoped to ``.hl``."""
    from pygments.formatters import HtmlFormatter
    # Markup: a style element is raw text, where an escaped quote would break the rule
    return Markup(_CSS + HtmlFormatter(style="default").get_style_defs(".hl"))


def _num(value: float) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else f"{value:.2e}"


def _bound(d: Any) -> str:
    text = f"rtol {d.tolerance.rtol:.0e}"
    return text + (f", atol {d.tolerance.atol:.0e}" if d.tolerance.atol else "")


def _referee(d: Any) -> str:
    r = d.referee
    if not r:
        return ""
    def num(v: Any) -> str:
        return v if isinstance(v, str) else f"{v:.1e}"
    return f"{r['closer']} (numpy {num(r['numpy_vs_float64'])}, torch {num(r['torch_vs_float64'])})"


def _render_row(d: Any, label: str) -> Markup:
    worst = ""
    if not d.passed and d.worst_index is not None and d.worst_values is not None:
        worst = (f"worst at {list(d.worst_index)}: {d.worst_values[0]:.6g} vs "
                 f"{d.worst_values[1]:.6g}")
    return Markup(_env().get_template("row").render(
        d=d, label=label, shape=shape_text(d.shape), num=_num, bound=_bound(d),
        referee=_referee(d), worst=worst))


def _cell(cell: Mapping[str, Any] | None) -> str:
    if cell is None:
        return "-"
    value = cell["max_abs"]
    return (f"{'yes' if cell['exact'] else 'no'} / {'yes' if cell['close'] else 'NO'} / "
            f"{value if isinstance(value, str) else f'{value:.1e}'}")


_NOTEBOOK_CSS = """
.dualgrad-report table { border-collapse: collapse; font-size: 12px; }
.dualgrad-report td, .dualgrad-report th { border: 1px solid #d0d7de; padding: 2px 6px;
  text-align: left; }
.dualgrad-report tr.fail td { background: #ffebe9; }
.dualgrad-report tr.diagnosis td { background: #fff8c5; font-style: italic; }
.dualgrad-report .agree { color: #1a7f37; font-weight: 600; }
.dualgrad-report .mismatch, .dualgrad-report .error { color: #cf222e; font-weight: 600; }
"""


def report_table(report: Any, *, open_passing: bool = False, style: bool = True) -> str:
    """A report as HTML: headline, failing rows first (each with its diagnosis), passing rows
    folded under a count, the first point of divergence of a failing run. Multi-step tensors
    are folded per tensor as in the text table. Also ``Report._repr_html_``."""
    failing, passing = [], []
    for _, diffs in report.groups():
        for d, label in collapse_steps(diffs):
            (passing if d.passed else failing).append(_render_row(d, label))
    divergence = report.divergence() if not report.passed else []
    body = _env().get_template("report").render(
        report=report, headline=summary_line(report), failing=failing, passing=passing,
        head=Markup(_HEAD), row=lambda r: r, cell=_cell, divergence=divergence,
        open_passing=open_passing)
    # a notebook has no page style sheet: the fragment brings its own, scoped to itself
    return f"<div class='dualgrad-report'><style>{_NOTEBOOK_CSS}</style>{body}</div>" \
        if style else body


def _highlight(text: str) -> list[Markup]:
    """Python source highlighted by pygments, one HTML line per source line (pygments closes
    its spans at each line end, so a line can be wrapped in its own element)."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    html = highlight(text, PythonLexer(stripnl=False, ensurenl=True), HtmlFormatter(nowrap=True))
    return [Markup(line) for line in html.split("\n")[:len(text.split("\n"))]]


def _pane(side: str, pieces: Sequence[Piece], note: str) -> Markup:
    parts = []
    for piece in pieces:
        lines = "".join(
            f"<div class='line'><span class='no'>{piece.first + k}</span>"
            f"<span class='src'>{html or ' '}</span></div>"
            for k, html in enumerate(_highlight(piece.text)))
        parts.append(f"<div class='piece hl'>{lines}</div>")
    if note:
        parts.append(f"<div class='note'>{Markup.escape(note)}</div>")
    empty = "" if parts else " empty"
    return Markup(f"<div class='pane {side}{empty}'>{''.join(parts)}</div>")


def _defined(row: Row) -> list[str]:
    """The names a row defines (both sides, once each): the table of contents' entries."""
    return list(dict.fromkeys(p.name for p in [*row.numpy, *row.torch] if p.name))


def concept_page(concept: Any, report: Any, rows: Sequence[Row], *, math_text: str,
                 titles: tuple[str, str], figures: Sequence[tuple[str, str]],
                 versions: Mapping[str, str], problem: str = "") -> str:
    """One concept's page. ``figures``: (relative URL, alt text) of each image; ``problem``:
    why some figures are missing, if they are."""
    return _env().get_template("page").render(
        title=f"{concept.qualified_name} -- dualgrad", css=css(), concept=concept,
        report=report, rows=rows, math=math_text, numpy_title=titles[0],
        torch_title=titles[1], pane=_pane, table=Markup(report_table(report, style=False)),
        figures=[{"src": s, "alt": a} for s, a in figures], versions=versions,
        defined=_defined, problem=problem,
        command=f"dualgrad run {concept.name} --seed {report.seed}")


def index_page(entries: Sequence[Mapping[str, Any]], *, versions: Mapping[str, str],
               seed: int, date: str) -> str:
    """The index: concepts by family (in the order given), each with its summary, pass/fail
    per dtype, worst NumPy-vs-torch error and, where known, the NumPy/torch time ratio."""
    families: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        families.setdefault(e["family"], []).append(_index_row(e))
    agreeing = sum(1 for e in entries if e["passed"])
    counts = f"{agreeing} of {len(entries)} concepts agree"
    return _env().get_template("index").render(
        title="dualgrad -- every concept", css=css(), families=list(families.items()),
        versions=versions, seed=seed, date=date, counts=counts)


def _index_row(e: Mapping[str, Any]) -> dict[str, Any]:
    word, cls = {}, {}
    for dtype in ("float64", "float32"):
        state = e["dtypes"].get(dtype)
        word[dtype] = {None: "-", True: "agree", False: "MISMATCH"}[state]
        if e["error"] and state is not True:
            word[dtype] = "ERROR"
        cls[dtype] = "agree" if state else ("mismatch" if state is False or e["error"] else "")
    worst = ", ".join(f"{k} {_num(v)}" for k, v in e["worst"].items()) or "-"
    speed = "-" if e.get("ratio") is None else f"{e['ratio']:.2f}x"
    return {"name": e["name"], "href": e["href"], "summary": e["summary"], "word": word,
            "cls": cls, "worst": worst, "speed": speed}


def index_entry(concept: Any, report: Any, href: str) -> dict[str, Any]:
    """What the index shows of one concept (plain data: it crosses process boundaries)."""
    check = primary_check(report.diffs)
    dtypes: dict[str, bool] = {}
    worst: dict[str, float] = {}
    for d in report.diffs:
        dtypes[d.dtype] = dtypes.get(d.dtype, True) and d.passed
        if d.check == check and not d.tolerance.atol:  # as the summary line: a tensor
            worst[d.dtype] = max(worst.get(d.dtype, 0.0), d.max_rel)  # that is 0 has no scale
    if report.error:
        dtypes = {k: False for k in dtypes} or {"float64": False}
    return {"name": concept.name, "family": concept.family, "summary": concept.summary,
            "href": href, "passed": report.passed, "error": report.error,
            "verdict": verdict(report.passed, report.error), "dtypes": dtypes,
            "worst": worst, "tensors": len(report.diffs), "seconds": report.seconds}
