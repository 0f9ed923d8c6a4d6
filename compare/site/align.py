"""The NumPy and the PyTorch file of a concept, cut into pieces and paired by role.

Both the site (``dualgrad report``) and the terminal (``dualgrad show``) show a concept's two
files side by side. Printed whole, the NumPy ``forward`` at line 127 faces line 127 of the torch
file, which is something else; so the files are cut at their top-level statements (``ast``) and
the pieces are paired by what they do:

1. the module docstring and the imports (``preamble``) beside each other;
2. per class defined in both files: the class line, ``__init__`` beside ``__init__``,
   ``forward`` beside ``forward``, the NumPy ``backward`` beside the line that replaces it in
   torch (``loss.backward()``: autograd), then the other methods with the same name (a leading
   underscore aside: ``_update`` beside ``update``), then the methods one file has alone;
3. the classes one file has alone, then the functions: same name beside same name first, then
   the rest of each file in its own column ("helpers after").

A ``Piece`` keeps its first line number, so line numbers on screen are the file's own.
Every line of both files appears exactly once (a test checks it).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

AUTOGRAD_NOTE = ("loss.backward()  # autograd: torch records forward's operations and "
                 "derives this backward from them; no code to write")
_ROLE_ORDER = ("__init__", "forward", "backward")


@dataclass(frozen=True)
class Piece:
    """Consecutive lines of one file: ``text`` starts at line ``first`` (1-based)."""

    first: int
    text: str
    name: str = ""

    @property
    def last(self) -> int:
        return self.first + max(0, len(self.text.splitlines()) - 1)


@dataclass
class Row:
    """One role on both sides: a list of pieces per side (empty: the side has none).

    ``note`` stands in for a side that has no code for this role (the autograd line)."""

    role: str
    numpy: list[Piece] = field(default_factory=list)
    torch: list[Piece] = field(default_factory=list)
    torch_note: str = ""

    @property
    def anchor(self) -> str:
        """An identifier for the row (the page's ``id``): role words joined by dashes."""
        return re.sub(r"[^a-z0-9]+", "-", self.role.lower()).strip("-")


@dataclass
class _Unit:
    """A top-level statement group: a def/class (with its decorators and the comment lines
    right above it), or anything else (imports, constants) glued to what precedes it."""

    name: str
    kind: str  # "preamble", "class", "function", "method", "classhead"
    first: int
    last: int
    children: list[_Unit] = field(default_factory=list)


def _start(node: ast.AST, lines: list[str], floor: int) -> int:
    """A definition's first line: its decorators, then comment lines right above (> floor)."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    while first - 1 > floor and lines[first - 2].lstrip().startswith("#"):
        first -= 1
    return first


def _cut(body: list[ast.stmt], lines: list[str], first: int, last: int,
         kind: str) -> tuple[_Unit, list[_Unit]]:
    """Split lines first..last at the definitions of ``body``: the head before the first
    definition, and one unit per definition running to the next one (trailing statements
    such as constants belong to the definition above them)."""
    defs = [n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                              ast.ClassDef))]
    starts: list[int] = []
    floor = first - 1
    for node in defs:
        start = max(_start(node, lines, floor), first)
        starts.append(start)
        floor = node.end_lineno or start
    head_last = (starts[0] - 1) if starts else last
    head = _Unit("", kind, first, head_last)
    units = []
    for k, node in enumerate(defs):
        end = (starts[k + 1] - 1) if k + 1 < len(starts) else last
        unit_kind = "class" if isinstance(node, ast.ClassDef) else \
            ("method" if kind == "classhead" else "function")
        unit = _Unit(node.name, unit_kind, starts[k], end)
        if isinstance(node, ast.ClassDef):
            unit_head, methods = _cut(node.body, lines, starts[k], end, "classhead")
            unit.children = [unit_head, *methods]
        units.append(unit)
    return head, units


def _parse(source: str) -> tuple[_Unit, list[_Unit]]:
    lines = source.splitlines()
    tree = ast.parse(source)
    return _cut(tree.body, lines, 1, len(lines), "preamble")


def _piece(lines: list[str], unit: _Unit) -> Piece | None:
    if unit.last < unit.first:
        return None
    text = "\n".join(lines[unit.first - 1:unit.last]).rstrip("\n")
    # trailing blank lines separate definitions in the file; on screen the rows do that
    body = text.rstrip()
    if not body:
        return None
    return Piece(unit.first, body, unit.name)


def _pieces(lines: list[str], units: list[_Unit]) -> list[Piece]:
    return [p for p in (_piece(lines, u) for u in units) if p is not None]


def align_sources(numpy_source: str, torch_source: str) -> list[Row]:
    """The rows of two sources paired by role (see the module docstring)."""
    np_lines, th_lines = numpy_source.splitlines(), torch_source.splitlines()
    np_head, np_units = _parse(numpy_source)
    th_head, th_units = _parse(torch_source)
    rows = [Row("module docstring and imports", _pieces(np_lines, [np_head]),
                _pieces(th_lines, [th_head]))]

    th_classes = {u.name: u for u in th_units if u.kind == "class"}
    np_classes = {u.name: u for u in np_units if u.kind == "class"}
    for name, np_class in np_classes.items():
        th_class = th_classes.get(name)
        if th_class is None:
            continue
        rows.extend(_class_rows(name, np_class, th_class, np_lines, th_lines))

    alone_np = [u for u in np_units if u.kind == "class" and u.name not in th_classes]
    alone_th = [u for u in th_units if u.kind == "class" and u.name not in np_classes]
    if alone_np or alone_th:
        rows.append(Row("classes in one file only", _pieces(np_lines, alone_np),
                        _pieces(th_lines, alone_th)))

    np_functions, np_extra = _functions(np_units)
    th_functions, th_extra = _functions(th_units)
    for name, unit in np_functions.items():
        if name in th_functions:
            rows.append(Row(f"function {unit.name}", _pieces(np_lines, [unit]),
                            _pieces(th_lines, [th_functions[name]])))
    helpers_np = sorted([u for n, u in np_functions.items() if n not in th_functions] + np_extra,
                        key=lambda u: u.first)
    helpers_th = sorted([u for n, u in th_functions.items() if n not in np_functions] + th_extra,
                        key=lambda u: u.first)
    if helpers_np or helpers_th:
        rows.append(Row("helpers", _pieces(np_lines, helpers_np), _pieces(th_lines, helpers_th)))
    return [r for r in rows if r.numpy or r.torch or r.torch_note]


def _functions(units: list[_Unit]) -> tuple[dict[str, _Unit], list[_Unit]]:
    """The functions by pairing key, and those that lost their key to another: of ``gelu``
    and a private ``_gelu`` in one file the public one pairs, the other is a helper."""
    by_key: dict[str, _Unit] = {}
    extra: list[_Unit] = []
    for unit in (u for u in units if u.kind == "function"):
        key = _key(unit.name)
        if key in by_key:
            kept = by_key[key] if not by_key[key].name.startswith("_") else unit
            extra.append(unit if kept is by_key[key] else by_key[key])
            by_key[key] = kept
        else:
            by_key[key] = unit
    return by_key, extra


def _key(name: str) -> str:
    """What pairs two definitions: the name, a private underscore aside (NumPy ``_update``
    beside torch ``update``); dunder names stay as they are."""
    return name if name.startswith("__") else name.lstrip("_")


def _class_rows(name: str, np_class: _Unit, th_class: _Unit, np_lines: list[str],
                th_lines: list[str]) -> list[Row]:
    np_head, *np_methods = np_class.children
    th_head, *th_methods = th_class.children
    np_by_name = {_key(m.name): m for m in np_methods}
    th_by_name = {_key(m.name): m for m in th_methods}
    rows = [Row(f"class {name}", _pieces(np_lines, [np_head]), _pieces(th_lines, [th_head]))]
    for role in _ROLE_ORDER:
        if role not in np_by_name and role not in th_by_name:
            continue
        row = Row(f"{name}.{role}", _pieces(np_lines, [np_by_name[role]] if role in np_by_name
                                            else []),
                  _pieces(th_lines, [th_by_name[role]] if role in th_by_name else []))
        if role == "backward" and not row.torch:
            row.torch_note = AUTOGRAD_NOTE
        rows.append(row)
    for method, unit in np_by_name.items():
        if method not in _ROLE_ORDER and method in th_by_name:
            rows.append(Row(f"{name}.{unit.name}", _pieces(np_lines, [unit]),
                            _pieces(th_lines, [th_by_name[method]])))
    rest_np = [u for m, u in np_by_name.items() if m not in _ROLE_ORDER and m not in th_by_name]
    rest_th = [u for m, u in th_by_name.items() if m not in _ROLE_ORDER and m not in np_by_name]
    if rest_np or rest_th:
        rows.append(Row(f"{name}: other methods", _pieces(np_lines, rest_np),
                        _pieces(th_lines, rest_th)))
    return rows


def align_files(numpy_path: Path, torch_path: Path) -> list[Row]:
    """``align_sources`` of two files (read as UTF-8)."""
    return align_sources(Path(numpy_path).read_text(encoding="utf-8"),
                         Path(torch_path).read_text(encoding="utf-8"))


def module_docstring(source: str) -> str:
    """The module docstring of a source ("" if it has none): the concept's math."""
    return ast.get_docstring(ast.parse(source), clean=True) or ""


# --- the terminal: ``dualgrad show`` -----------------------------------------------------------
_GUTTER = 5  # "1234 " : line numbers up to 9999
_RESET = "\033[0m"


def _ansi(token_type: object) -> str:
    """A colour per kind of token, close to what editors use; "" for plain text."""
    from pygments import token as t
    for kind, code in ((t.Comment, "90"), (t.String.Doc, "32"), (t.String, "32"),
                       (t.Keyword, "1;34"), (t.Name.Function, "33"), (t.Name.Class, "1;33"),
                       (t.Name.Decorator, "35"), (t.Name.Builtin, "36"), (t.Number, "36"),
                       (t.Operator.Word, "1;34")):
        if token_type in kind:
            return f"\033[{code}m"
    return ""


def _token_lines(text: str) -> list[list[tuple[str, str]]]:
    """``text`` lexed as Python: per line, (ansi colour, characters) runs, tabs expanded."""
    from pygments.lexers import PythonLexer
    lines: list[list[tuple[str, str]]] = [[]]
    for token_type, value in PythonLexer(stripnl=False, ensurenl=False).get_tokens(text):
        colour = _ansi(token_type)
        for k, part in enumerate(value.split("\n")):
            if k:
                lines.append([])
            if part:
                lines[-1].append((colour, part.expandtabs(4)))
    return lines


def _wrap(runs: list[tuple[str, str]], width: int) -> list[list[tuple[str, str]]]:
    """One line's runs cut into rows of at most ``width`` characters (wrapped, not clipped)."""
    rows: list[list[tuple[str, str]]] = [[]]
    used = 0
    for colour, chars in runs:
        while chars:
            if used == width:
                rows.append([])
                used = 0
            take = chars[:width - used]
            rows[-1].append((colour, take))
            used += len(take)
            chars = chars[len(take):]
    return rows


def _cells(pieces: list[Piece], note: str, width: int) -> list[tuple[str, int]]:
    """One side of a row as display lines: (text with colour codes, visible length)."""
    body = width - _GUTTER
    out: list[tuple[str, int]] = []
    for k, piece in enumerate(pieces):
        if k:
            out.append(("", 0))
        for offset, runs in enumerate(_token_lines(piece.text)):
            for j, wrapped in enumerate(_wrap(runs, body)):
                number = f"{piece.first + offset:>4} " if j == 0 else " " * _GUTTER
                text = "".join(f"{c}{s}{_RESET}" if c else s for c, s in wrapped)
                out.append((f"\033[90m{number}{_RESET}{text}" if text or number.strip()
                            else number, _GUTTER + sum(len(s) for _, s in wrapped)))
    if note:
        for wrapped in _wrap([("\033[3;35m", note)], body):
            out.append((" " * _GUTTER + "".join(f"{c}{s}{_RESET}" for c, s in wrapped),
                        _GUTTER + sum(len(s) for _, s in wrapped)))
    return out


def _strip(text: str) -> str:
    return re.sub(r"\033\[[0-9;]*m", "", text)


def render_terminal(rows: list[Row], titles: tuple[str, str], width: int,
                    colour: bool) -> str:
    """Rows as two columns of equal width, each role under a rule naming it; line numbers
    are the files' own; long lines wrap inside their column. Without ``colour`` the text has
    no escape codes at all (a pipe, a file, ``NO_COLOR``)."""
    column = (width - 3) // 2
    out = [f"{titles[0][:column]:<{column}} | {titles[1][:column]}",
           f"{'-' * column}-+-{'-' * column}"]
    for row in rows:
        label = f"== {row.role} "
        out.append(f"\033[1m{label}{'=' * max(0, width - len(label))}{_RESET}")
        left, right = _cells(row.numpy, "", column), _cells(row.torch, row.torch_note, column)
        for k in range(max(len(left), len(right))):
            a, a_len = left[k] if k < len(left) else ("", 0)
            b, _ = right[k] if k < len(right) else ("", 0)
            out.append(f"{a}{' ' * (column - a_len)} | {b}".rstrip())
    text = "\n".join(out)
    return text if colour else _strip(text)
