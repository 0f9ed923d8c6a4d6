"""Plots: a PNG is written and the figure says what it shows, in which dtype."""
import numpy as np
import pytest

from compare import get, run_concept
from compare.plots import as_2d, figure_for


@pytest.fixture(scope="module")
def report():
    return run_concept(get("linear"))


def test_figure_titles_say_what_and_which_dtype(report):
    fig = figure_for(report)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert fig._suptitle.get_text().startswith("layers/linear: NumPy manual backward vs torch")
    assert any(t.startswith("error of each tensor against its tolerance (float64, float32)")
               for t in titles)
    assert any(t.startswith("|numpy - torch| of ") and "float" in t for t in titles)
    assert any(t.startswith("log10 |numpy - torch| / |torch| of ") for t in titles)
    bars = fig.axes[0]
    assert {t.get_text() for t in bars.get_yticklabels()} == \
        {"out", "grad.input.x", "grad.param.weight", "grad.param.bias"}


def test_plot_writes_a_png(report, tmp_path):
    path = report.plot(tmp_path / "sub" / "linear.png")
    assert path.exists() and path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10_000


def test_as_2d_handles_every_rank():
    assert as_2d(np.float64(3.0)).shape == (1, 1)
    assert as_2d(np.zeros(4)).shape == (1, 4)
    assert as_2d(np.zeros((2, 3, 4))).shape == (6, 4)
