"""Focused tests of the generalization curves: overfitting shows where it should (bigger
model, less data), weight decay narrows the gap, the twins' curves agree, the plot."""
import numpy as np
import pytest

from compare.concept import Trial
from compare.evaluation import generalization as cmp
from numpy_impl.evaluation import generalization as npg


@pytest.fixture(scope="module")
def outcomes():
    return {case.options["setting"]: cmp.run(case, Trial("float64", seed=0))
            for case in cmp.CASES}


def test_the_twins_draw_the_same_curves(outcomes):
    for outcome in outcomes.values():
        assert set(outcome.numpy) == set(outcome.torch)
        for name, value in outcome.numpy.items():
            np.testing.assert_allclose(value, outcome.torch[name], rtol=1e-12, atol=1e-14)


def test_shapes_and_the_gap(outcomes):
    curves = outcomes["hidden"].numpy
    assert curves["hidden/val_loss"].shape == (3, 10)
    np.testing.assert_array_equal(curves["hidden/gap"],
                                  curves["hidden/val_loss"] - curves["hidden/train_loss"])
    assert np.array_equal(npg.generalization_gap({"val_loss": np.ones(2),
                                                  "train_loss": np.zeros(2)}), np.ones(2))


def test_overfitting_is_visible(outcomes):
    hidden = outcomes["hidden"].numpy
    final = lambda c, n: c[n][:, -1]  # noqa: E731
    # a bigger model fits the training set better and generalizes worse
    assert np.all(np.diff(final(hidden, "hidden/train_loss")) < 0)
    assert np.all(np.diff(final(hidden, "hidden/gap")) > 0)
    # more data: the training loss rises towards the validation loss, the gap closes
    data = outcomes["n_train"].numpy
    assert np.all(np.diff(final(data, "n_train/train_loss")) > 0)
    assert final(data, "n_train/gap")[-1] < 0.8 * final(data, "n_train/gap")[0]
    # weight decay: higher training loss, smaller gap
    decay = outcomes["weight_decay"].numpy
    assert np.all(np.diff(final(decay, "weight_decay/train_loss")) > 0)
    assert final(decay, "weight_decay/gap")[-1] < 0.5 * final(decay, "weight_decay/gap")[0]
    # dropout: the training loss (measured with dropout on) rises
    drop = outcomes["dropout"].numpy
    assert np.all(np.diff(final(drop, "dropout/train_loss")) > 0)


def test_plot_is_written(tmp_path, monkeypatch):
    # the figure's sweeps are long; two values and a few epochs exercise the same drawing
    monkeypatch.setattr(cmp, "PLOT_VALUES", {k: v[:2] for k, v in cmp.PLOT_VALUES.items()})
    monkeypatch.setattr(cmp, "PLOT_EPOCHS", 3)
    paths = cmp.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["generalization_curves.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
