"""Figures: a report's figure, training curves, and the one helper every concept's figures use.

``new_figure`` / ``save`` are the shared set-up: a ``matplotlib.figure.Figure`` drawn by the
Agg canvas, never pyplot, so importing or plotting changes no global matplotlib state (a
notebook's backend stays its own) and a figure is freed with its last reference.

One figure per report:
- top: each tensor's normwise relative error (NumPy vs torch, worst over cases) against its
  tolerance, per dtype, on a log scale;
- below, for the tensors with the largest error relative to tolerance: a heatmap of
  |numpy - torch| (reshaped to 2-D) and a histogram of log10 of the elementwise relative error.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from compare.metrics import Diff, primary_check, split_step, verdict

MAX_DETAIL_ROWS = 4  # each row costs ~0.15 s CPU to draw; the worst four tell the story
_TINY = np.finfo(np.float64).tiny
_AXIS_TOP = 1e6  # the error bars' largest drawn value
_EXACT_FLOOR = -20.0  # where exactly equal elements are drawn on the log10 axis


def as_2d(array: np.ndarray) -> np.ndarray:
    """Any array as a matrix: scalars 1x1, vectors one row, else (prod(leading), last)."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 0:
        return array.reshape(1, 1)
    if array.ndim == 1:
        return array.reshape(1, -1)
    return array.reshape(-1, array.shape[-1])


def new_figure(*, figsize: tuple[float, float], layout: str | None = "constrained") -> Figure:
    """A figure of its own (no pyplot): what every figure of the library is drawn on."""
    return Figure(figsize=figsize, layout=layout)


def save(fig: Figure, path: Path, dpi: int = 90) -> Path:
    """Write ``fig`` as PNG to ``path`` (its folder created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _worst_per_tensor(diffs: Sequence[Diff], dtype: str) -> dict[str, Diff]:
    """Per tensor (steps of a multi-step concept folded together): its worst diff."""
    worst: dict[str, Diff] = {}
    check = primary_check(list(diffs))  # once: per diff it made plotting quadratic
    for d in diffs:
        name = split_step(d.name)[0]
        if d.dtype == dtype and d.check == check:
            if name not in worst or d.usage > worst[name].usage:
                worst[name] = d
    return worst


def figure_for(report: Any) -> Figure:
    """The report's figure (not saved); titles say what is plotted and in which dtype."""
    dtypes = list(dict.fromkeys(d.dtype for d in report.diffs))
    primary = primary_check(report.diffs)
    names = list(dict.fromkeys(split_step(d.name)[0] for d in report.diffs
                               if d.check == primary))
    comparable = [d for d in report.diffs if d.check == primary and d.a is not None
                  and d.b is not None and np.shape(d.a) == np.shape(d.b) and d.size]
    worst_by_name: dict[str, Diff] = {}
    for d in comparable:  # one detail row per tensor: its worst case, dtype and step
        name = split_step(d.name)[0]
        if name not in worst_by_name or d.usage > worst_by_name[name].usage:
            worst_by_name[name] = d
    detail = sorted(worst_by_name.values(), key=lambda d: (d.passed, -d.usage))
    detail = detail[:MAX_DETAIL_ROWS]
    bar_height = max(2.5, 0.22 * len(names) * max(1, len(dtypes)) + 1.2)
    # Axes placed in inches, not by a layout engine: constrained layout measured every tick
    # label of every axes on each save and took half of a site's plotting time.
    width, top, row_height = 12.0, 0.45, 3.0
    height = top + bar_height + row_height * len(detail) + 0.3
    fig = new_figure(figsize=(width, height), layout=None)

    def box(left: float, bottom: float, w: float, h: float) -> list[float]:
        return [left / width, bottom / height, w / width, h / height]

    what = "yours vs the torch twin" if primary == "yours-vs-torch" else \
        "NumPy manual backward vs torch autograd"
    fig.suptitle(f"{report.family}/{report.concept}: {what} "
                 f"(seed {report.seed}) -- {verdict(report.passed, report.error)}",
                 y=1 - 0.12 / height, va="top")
    label_room = 0.3 + 0.06 * max((len(n) for n in names), default=4)  # 7 pt names
    bars_bottom = height - top - bar_height
    ax = fig.add_axes(box(label_room, bars_bottom + 0.6, width - label_room - 0.3,
                          bar_height - 1.0))
    _error_bars(ax, report, names, dtypes)
    for row, d in enumerate(detail):
        bottom = bars_bottom - row_height * (row + 1) + 0.6
        heatmap = fig.add_axes(box(0.85, bottom, 4.5, row_height - 1.05))
        colorbar = fig.add_axes(box(5.45, bottom, 0.12, row_height - 1.05))
        _heatmap(heatmap, d, colorbar)
        _histogram(fig.add_axes(box(6.9, bottom, 4.8, row_height - 1.05)), d)
    if len(worst_by_name) > len(detail):
        fig.text(0.01, 0.002, f"detail rows: {len(detail)} of {len(worst_by_name)} tensors, "
                 "largest error relative to tolerance first", fontsize=8)
    return fig


def _error_bars(ax: Axes, report: Any, names: list[str], dtypes: list[str]) -> None:
    if not names:
        ax.set_title("no tensors were compared")
        ax.axis("off")
        return
    width = 0.8 / max(1, len(dtypes))
    y = np.arange(len(names))
    for k, dtype in enumerate(dtypes):
        worst = _worst_per_tensor(report.diffs, dtype)
        # clipped to [1e-20, 1e6]: a tensor that is 0 in exact arithmetic (held to an atol)
        # has a relative error near 1e300, which would stretch the axis past what it can draw
        errors = np.array([min(max(worst[n].max_rel, 1e-20), _AXIS_TOP) if n in worst
                           else np.nan for n in names])
        # the bound relative to the tensor's scale: rtol, or more where an atol applies
        tols = np.array([min(worst[n].bound / max(worst[n].scale, _TINY), _AXIS_TOP)
                         if n in worst else np.nan for n in names])
        colours = ["tab:red" if n in worst and not worst[n].passed
                   else ("tab:blue" if dtype == "float64" else "tab:orange") for n in names]
        offset = y + (k - (len(dtypes) - 1) / 2) * width
        ax.barh(offset, errors, height=width, color=colours, label=f"{dtype} error")
        ax.scatter(tols, offset, marker="|", s=120, color="black",
                   label="tolerance" if k == 0 else None)
    ax.set_xscale("log")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("normwise relative error max|numpy - torch| / max|torch| (worst case)")
    ax.set_title("error of each tensor against its tolerance (" + ", ".join(dtypes) + ")")
    ax.legend(loc="lower right", fontsize=7)


def _heatmap(ax: Axes, d: Diff, colorbar: Axes) -> None:
    delta = as_2d(np.abs(np.asarray(d.a, np.float64) - np.asarray(d.b, np.float64)))
    image = ax.imshow(np.nan_to_num(delta, nan=np.inf), aspect="auto", cmap="viridis",
                      interpolation="nearest")
    ax.figure.colorbar(image, cax=colorbar)
    ax.set_title(f"|numpy - torch| of {d.name} (case {d.case!r}, {d.dtype})", fontsize=9)
    ax.set_xlabel("last dimension")
    ax.set_ylabel("leading dims (flattened)")
    for axis, n in ((ax.xaxis, delta.shape[1]), (ax.yaxis, delta.shape[0])):
        if n <= 12:
            axis.set_ticks(range(n))
        else:
            axis.set_major_locator(MaxNLocator(integer=True))


def _histogram(ax: Axes, d: Diff) -> None:
    a = np.asarray(d.a, np.float64).reshape(-1)
    b = np.asarray(d.b, np.float64).reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(a - b) / np.maximum(np.abs(b), _TINY)
    exact = int(np.count_nonzero(rel == 0))
    # elements whose reference is ~0 have huge relative errors; draw them at 1e2 ("way off")
    logs = np.minimum(np.log10(rel[np.isfinite(rel) & (rel > 0)]), 2.0)
    # rounded: log10 errors a few ulp apart (all equal in truth) leave no room for 40 bins
    ax.hist(np.round(np.concatenate([logs, np.full(exact, _EXACT_FLOOR)]), 6), bins=40,
            color="tab:gray")
    if d.tolerance.rtol > 0:  # rtol 0: exact equality required, no line to draw
        ax.axvline(np.log10(d.tolerance.rtol), color="tab:red", linestyle="--",
                   label=f"rtol {d.tolerance.rtol:.0e}")
    ax.plot([], [], " ", label=f"{exact} of {a.size} exact (at {_EXACT_FLOOR:g})")
    ax.set_title(f"log10 |numpy - torch| / |torch| of {d.name} ({d.dtype})", fontsize=9)
    ax.set_xlabel("log10 elementwise relative error")
    ax.set_ylabel("elements")
    ax.legend(loc="upper left", fontsize=7)


def plot_report(report: Any, path: Path) -> Path:
    """Write the report's figure to ``path`` (PNG) and return the path."""
    return save(figure_for(report), path)


def plot_curves(path: Path, title: str, x: np.ndarray, numpy_curve: np.ndarray,
                torch_curve: np.ndarray, *, xlabel: str, ylabel: str, dtype: str,
                labels: tuple[str, str] = ("NumPy (by hand)", "torch (autograd)")) -> Path:
    """For multi-step concepts: both twins' curves overlaid (top), |difference| on a log
    scale (bottom). Exactly equal points are drawn at 1e-20."""
    fig = new_figure(figsize=(9, 7))
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(x, torch_curve, label=labels[1], linewidth=2.5, alpha=0.7)
    top.plot(x, numpy_curve, "--", label=labels[0], linewidth=1.5)
    top.set_ylabel(ylabel)
    top.set_title(f"{title} ({dtype})")
    top.legend(loc="upper right")  # loc="best" searches every point: slow on long curves
    difference = np.abs(np.asarray(numpy_curve, np.float64) - np.asarray(torch_curve, np.float64))
    bottom.semilogy(x, np.maximum(difference, 1e-20), color="tab:red")
    bottom.set_xlabel(xlabel)
    bottom.set_ylabel(f"|numpy - torch| of {ylabel}")
    bottom.set_title(f"difference between the twins ({dtype}; 1e-20 = exactly equal)")
    return save(fig, path)
