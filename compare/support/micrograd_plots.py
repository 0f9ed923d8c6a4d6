"""Drawing a micrograd expression graph: nodes by depth, each with its op, data and grad. A
private helper of ``compare.language.micrograd``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compare.plots import new_figure, save
from compare.support.micrograd_graphs import Graph, execute
from numpy_impl.language import micrograd as numpy_twin


def graph_drawing(graph: Graph, path: Path, title: str) -> Path:
    """Nodes by depth from left (leaves) to right (output), each with its op, data and grad."""
    leaves = [numpy_twin.Value(x) for x in graph.leaves]
    root = execute(graph, leaves)[graph.root]
    root.backward()
    order = numpy_twin.topological_order(root)  # every Value, constants and rebinds included
    leaf_names = {id(v): f"x{k}" for k, v in enumerate(leaves)}
    depth: dict[int, int] = {}
    for v in order:
        depth[id(v)] = 1 + max((depth[id(c)] for c in v._prev), default=-1)
    columns: dict[int, list[Any]] = {}
    for v in order:
        columns.setdefault(depth[id(v)], []).append(v)
    where = {id(v): (d, row - (len(col) - 1) / 2) for d, col in columns.items()
             for row, v in enumerate(col)}
    height = max(len(col) for col in columns.values())
    fig = new_figure(figsize=(2.2 * len(columns) + 1, 0.9 * height + 1.5), layout="tight")
    ax = fig.subplots()
    for v in order:
        x1, y1 = where[id(v)]
        for c in v._prev:
            x0, y0 = where[id(c)]
            ax.annotate("", (x1 - 0.38, y1), (x0 + 0.38, y0),
                        arrowprops=dict(arrowstyle="->", color="0.55", lw=0.8))
        name = v._op or leaf_names.get(id(v), "const")
        ax.text(x1, y1, f"{name}\ndata {float(v.data):.4g}\ngrad {float(v.grad):.4g}",
                ha="center", va="center", fontsize=7, family="monospace",
                bbox=dict(boxstyle="round", fc="lightyellow" if not v._prev else "white",
                          ec="tab:blue" if v is root else "0.4"))
    ax.set_xlim(-0.7, len(columns) - 0.3)
    ax.set_ylim(-height / 2 - 0.2, height / 2 + 0.2)
    ax.axis("off")
    ax.set_title(title)
    return save(fig, path)
