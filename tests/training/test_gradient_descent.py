"""Focused tests for batch gradient descent: both twins converge to the exact minimizer
(lstsq, Newton), the gradient vanishes there, stable large logits, the plots."""
from __future__ import annotations

import numpy as np
import pytest

from compare.concept import Trial
from compare.registry import get
from compare.training import gradient_descent as comparison
from numpy_impl.training import gradient_descent as gd


@pytest.mark.parametrize("name", ["least_squares_2d", "least_squares_5d", "logistic_2d"])
def test_both_paths_converge_to_the_exact_minimizer(name):
    case = get("gradient_descent").case(name)
    trial = Trial("float64")
    outcome = comparison.run(case, trial)
    best = comparison.solution(case, trial)
    for values in (outcome.numpy, outcome.torch):
        np.testing.assert_allclose(values["w"][-1], best, atol=1e-6)
        assert np.linalg.norm(values["grad"][-1]) < 1e-6 * np.linalg.norm(values["grad"][0])
        assert np.all(np.diff(values["loss"]) <= 1e-12)   # lr below 2 / lambda_max: monotone


def test_the_minimizers_satisfy_their_optimality_conditions():
    trial = Trial("float64")
    for name, loss in (("least_squares_2d", gd.least_squares), ("logistic_2d", gd.logistic)):
        case = get("gradient_descent").case(name)
        d = comparison.data(case, trial)
        _, grad = loss(comparison.solution(case, trial), d["X"], d["y"])
        assert np.abs(grad).max() < 1e-12   # normal equations / X^T (sigmoid - y) = 0


def test_known_answers_and_large_logits():
    X = np.array([[1.0, 0.0], [0.0, 2.0]])
    y = np.array([1.0, 0.0])
    loss, grad = gd.least_squares(np.zeros(2), X, y)
    assert loss == pytest.approx(0.25)              # (1^2 + 0^2) / (2 * 2)
    np.testing.assert_allclose(grad, [-0.5, 0.0])   # X^T (0 - y) / 2
    loss, grad = gd.logistic(np.zeros(2), X, y)
    assert loss == pytest.approx(np.log(2))         # p = 1/2 everywhere
    np.testing.assert_allclose(grad, [-0.25, 0.5])  # X^T (1/2 - y) / 2
    big = np.array([[800.0], [-800.0]])
    loss, grad = gd.logistic(np.ones(1), big, np.array([0.0, 1.0]))
    assert loss == pytest.approx(800.0) and np.isfinite(grad).all()
    np.testing.assert_allclose(grad, [800.0])        # (1 - 0) 800 / 2 + (0 - 1)(-800) / 2


def test_float32_stays_float32():
    trial = Trial("float32")
    outcome = comparison.run(get("gradient_descent").case("logistic_2d"), trial)
    assert {v.dtype for v in outcome.numpy.values()} == {np.dtype(np.float32)}


def test_plots_are_written(tmp_path):
    paths = comparison.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["gradient_descent_paths.png",
                                       "gradient_descent_loss_least_squares_2d.png",
                                       "gradient_descent_loss_logistic_2d.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
