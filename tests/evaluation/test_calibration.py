"""Focused tests of calibration: every calibration error against a plain-Python reference, the
bins' conventions (right-closed equal width, equal mass by rank, empty bins), temperature
scaling (the same T in both twins, the minimizer of the NLL, ECE and NLL improved, the
argmax unchanged), the case filter, verify with copies and broken copies, the plot."""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from compare.concept import Trial
from compare.evaluation import calibration as cmp
from compare.verify import load, verify
from numpy_impl.evaluation import calibration as npc
from numpy_impl.layers.activations import softmax
from torch_impl.evaluation import calibration as tc


# --- a plain-Python reference: one point at a time, no arrays ---------------------------------
def reference_ece(probs, target, n_bins, norm, strategy, mode):
    probs = [[float(p) for p in row] for row in probs]
    target = [int(t) for t in target]
    n, k = len(probs), len(probs[0])
    if mode == "top-label":
        rows = [[(max(p), 1.0 if p.index(max(p)) == t else 0.0)
                 for p, t in zip(probs, target, strict=True)]]
    else:
        rows = [[(p[c], 1.0 if t == c else 0.0) for p, t in zip(probs, target, strict=True)]
                for c in range(k)]
    errors = []
    for points in rows:
        if strategy == "uniform":  # bin b = (b/M, (b+1)/M], 0 in the first
            bins = [min(max(math.ceil(s * n_bins) - 1, 0), n_bins - 1) for s, _ in points]
        else:  # rank r (stable) -> floor(r M / N)
            order = sorted(range(n), key=lambda i: (points[i][0], i))
            bins = [0] * n
            for rank, i in enumerate(order):
                bins[i] = rank * n_bins // n
        gaps, weights = [], []
        for b in range(n_bins):
            members = [points[i] for i in range(n) if bins[i] == b]
            if not members:
                gaps.append(0.0)
                weights.append(0.0)
                continue
            conf = sum(s for s, _ in members) / len(members)
            acc = sum(h for _, h in members) / len(members)
            gaps.append(abs(acc - conf))
            weights.append(len(members) / n)
        if norm == "l1":
            errors.append(sum(w * g for w, g in zip(weights, gaps, strict=True)))
        elif norm == "l2":
            errors.append(math.sqrt(sum(w * g * g for w, g in zip(weights, gaps, strict=True))))
        else:
            errors.append(max(gaps))
    return sum(errors) / len(errors)


@pytest.fixture(scope="module")
def random_probs():
    rng = np.random.default_rng(3)
    logits, target = cmp.random_logits(rng, 300, 4, 2.0, 0.6)
    probs = softmax(logits, 1)
    keep = cmp.defined_samples(probs, 12)
    return probs[keep], target[keep]


@pytest.mark.parametrize("strategy", npc.STRATEGIES)
@pytest.mark.parametrize("mode", npc.MODES)
@pytest.mark.parametrize("norm", npc.NORMS)
def test_every_error_matches_the_plain_python_reference(random_probs, strategy, mode, norm):
    probs, target = random_probs
    expected = reference_ece(probs, target, 12, norm, strategy, mode)
    ours, _ = npc.calibration_error(probs, target, 12, norm, strategy, mode)
    theirs, _ = tc.calibration_error(torch.from_numpy(probs), torch.from_numpy(target), 12,
                                     norm, strategy, mode)
    assert float(ours) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert float(theirs) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert expected > 0.01  # random labels are far from calibrated: the test can see a change


def test_a_hand_computed_example():
    # 4 points, 2 bins (0, .5] and (.5, 1]: confidences .3 .4 | .8 .9, correct 0 1 | 1 0
    probs = np.array([[0.3, 0.7], [0.6, 0.4], [0.8, 0.2], [0.1, 0.9]])
    target = np.array([0, 0, 0, 0])
    # top-label: conf .7 .6 .8 .9 -> all in (.5, 1]; correct 0 1 1 0: acc .5, conf .75
    assert float(npc.calibration_error(probs, target, 2)[0]) == pytest.approx(0.25)
    count, conf, acc = npc.calibration_error(probs, target, 2)[1]
    np.testing.assert_allclose(count, [0, 4])
    np.testing.assert_allclose(conf, [0, 0.75])
    np.testing.assert_allclose(acc, [0, 0.5])
    # classwise, class 0: p = .3 .6 .8 .1, y = 1 1 1 1: bins {.3, .1} conf .2 acc 1 and
    # {.6, .8} conf .7 acc 1 -> .5 * .8 + .5 * .3 = .55; class 1: p = .7 .4 .2 .9, hits 0:
    # {.4, .2} conf .3, {.7, .9} conf .8 -> .55; mean .55
    assert float(npc.calibration_error(probs, target, 2, mode="classwise")[0]) == \
        pytest.approx(0.55)
    # max norm: the worst bin of top-label is .25; L2: sqrt(1 * .25^2) = .25
    assert float(npc.calibration_error(probs, target, 2, norm="max")[0]) == pytest.approx(0.25)
    assert float(npc.calibration_error(probs, target, 2, norm="l2")[0]) == pytest.approx(0.25)


def test_equal_width_bins_are_right_closed_with_zero_in_the_first():
    scores = np.array([0.0, 0.1, 0.25, 0.2500001, 0.5, 1.0])
    np.testing.assert_array_equal(npc.bin_indices(scores, 4), [0, 0, 0, 1, 1, 3])
    np.testing.assert_array_equal(tc.bin_indices(torch.from_numpy(scores), 4).numpy(),
                                  [0, 0, 0, 1, 1, 3])


def test_equal_mass_bins_hold_floor_or_ceil_of_n_over_m_and_keep_ties_in_order():
    rng = np.random.default_rng(0)
    scores = rng.random(23)
    count = np.bincount(npc.bin_indices(scores, 5, "quantile"), minlength=5)
    np.testing.assert_array_equal(count, [5, 5, 4, 5, 4])  # floor(r * 5 / 23) per rank r
    # equal scores: the earlier point gets the lower rank, in both twins
    tied = np.array([0.5, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(npc.bin_indices(tied, 2, "quantile"), [0, 0, 1, 1])
    np.testing.assert_array_equal(tc.bin_indices(torch.from_numpy(tied), 2, "quantile").numpy(),
                                  [0, 0, 1, 1])


def test_fewer_points_than_bins_leave_empty_bins_at_zero():
    probs = np.array([[0.9, 0.1], [0.35, 0.65]])
    error, (count, conf, acc) = npc.calibration_error(probs, np.array([0, 0]), 10)
    assert count.sum() == 2 and np.count_nonzero(count) == 2
    assert np.all(conf[count == 0] == 0) and np.all(acc[count == 0] == 0)
    # .9 right (gap .1), .65 wrong (gap .65): (.1 + .65) / 2
    assert float(error) == pytest.approx(0.375)
    _, (count_q, _, _) = npc.calibration_error(probs, np.array([0, 0]), 10, strategy="quantile")
    np.testing.assert_array_equal(count_q, [1, 0, 0, 0, 0, 1, 0, 0, 0, 0])


def test_bad_arguments_name_the_choices():
    probs, target = np.full((2, 2), 0.5), np.zeros(2, dtype=np.int64)
    for twin, p, t in ((npc, probs, target),
                       (tc, torch.from_numpy(probs), torch.from_numpy(target))):
        with pytest.raises(ValueError, match="norm must be one of"):
            twin.calibration_error(p, t, norm="l3")
        with pytest.raises(ValueError, match="strategy must be one of"):
            twin.calibration_error(p, t, strategy="log")
        with pytest.raises(ValueError, match="mode must be one of"):
            twin.calibration_error(p, t, mode="marginal")


def test_the_case_filter_drops_points_on_edges_and_argmax_ties():
    probs = np.array([[0.5, 0.5],                     # top-two tie, and on the edge 1/2
                      [0.7, 0.3], [0.6, 0.4], [0.8, 0.2], [0.9, 0.1],
                      [0.25000001, 0.74999999],       # 1e-8 from the edge 1/4 of 4 bins
                      [0.62, 0.38]])
    keep = cmp.defined_samples(probs, 4)
    np.testing.assert_array_equal(keep, [False, True, True, True, True, False, True])
    # a wider margin: .7 / .3 and .8 / .2 lie .05 from the edges 3/4 and 1/4
    assert cmp.defined_samples(probs, 4, delta=0.06).tolist() == \
        [False, False, True, False, True, False, True]


# --- temperature scaling ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlp():
    return cmp.overconfident_logits(0)


@pytest.fixture(scope="module")
def fitted(mlp):
    numpy_path = npc.fit_temperature(npc.TemperatureScaling().double(), mlp["val"], mlp["y_val"])
    torch_path = tc.fit_temperature(tc.TemperatureScaling().double(),
                                    torch.from_numpy(mlp["val"].copy()),
                                    torch.from_numpy(mlp["y_val"].copy()))
    return numpy_path, {k: v.numpy() for k, v in torch_path.items()}


def _nll_minimizer(logits, target):
    """The T minimizing the NLL, by bisection on the sign of dL/dT (L is unimodal in T)."""
    def slope(t):
        p = softmax(logits / t, 1)
        # dL/dT = (1/N) Σ_i (z_{i,y_i} - Σ_k p_ik z_ik) / T²
        picked = logits[np.arange(len(target)), target]
        return np.mean(picked - np.sum(p * logits, axis=1)) / t ** 2
    low, high = 0.05, 50.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if slope(middle) < 0 else (low, middle)
    return 0.5 * (low + high)


def test_both_twins_fit_the_same_temperature_to_1e_9(fitted):
    numpy_path, torch_path = fitted
    assert abs(numpy_path["temperature"][-1] - torch_path["temperature"][-1]) < 1e-9
    np.testing.assert_allclose(numpy_path["temperature"], torch_path["temperature"],
                               rtol=1e-12)
    np.testing.assert_allclose(numpy_path["nll"], torch_path["nll"], rtol=1e-12)


def test_gradient_descent_finds_the_nll_minimizer(mlp, fitted):
    numpy_path, _ = fitted
    best = _nll_minimizer(mlp["val"], mlp["y_val"])
    assert numpy_path["temperature"][-1] == pytest.approx(best, rel=2e-3)
    assert np.all(np.diff(numpy_path["nll"]) <= 1e-12)  # descent: the NLL never rises
    assert best > 3.0  # the over-fitted MLP is strongly over-confident


def test_temperature_scaling_repairs_the_overconfident_mlp(mlp, fitted):
    t = fitted[0]["temperature"][-1]
    z, y = mlp["test"], mlp["y_test"]
    before, after = softmax(z, 1), softmax(z / t, 1)
    accuracy = np.mean(before.argmax(1) == y)
    assert np.mean(before.max(1)) > accuracy + 0.2          # over-confident by > 20 points
    assert np.array_equal(before.argmax(1), after.argmax(1))  # T > 0 keeps every prediction
    ece_before = float(npc.calibration_error(before, y)[0])
    ece_after = float(npc.calibration_error(after, y)[0])
    assert ece_before > 0.2 and ece_after < 0.1
    assert float(npc.nll(z / t, y)) < 0.5 * float(npc.nll(z, y))


def test_an_underconfident_model_gets_a_temperature_below_one():
    outcome = cmp.run(cmp.CONCEPT.case("fit-underconfident"), Trial("float64"))
    path = outcome.numpy["fit.temperature"]
    assert path[-1] < 0.4  # labels drawn from softmax(3 z): T* near 1/3
    assert outcome.numpy["after.nll"] < outcome.numpy["before.nll"]
    assert outcome.numpy["after.ece"] < outcome.numpy["before.ece"]


def test_the_temperature_gradient_by_hand():
    rng = np.random.default_rng(2)
    z, g = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    layer = npc.TemperatureScaling(2.0).double()
    out = layer(z)
    dz = layer.backward(g)
    np.testing.assert_allclose(out, z / 2.0)
    np.testing.assert_allclose(dz, g / 2.0)
    np.testing.assert_allclose(layer.temperature.grad, [-np.sum(g * z) / 4.0])
    assert npc.TemperatureScaling().temperature.data.dtype == np.float32  # like torch


def test_ece_cases_keep_most_points(mlp):
    outcome = cmp.run(cmp.CONCEPT.case("ece-overconfident"), Trial("float32"))
    assert len(outcome.inputs["probs"]) >= 0.9 * len(mlp["test"])


@pytest.mark.skipif(importlib.util.find_spec("torchmetrics") is None,
                    reason="torchmetrics is optional (the [witness] test extra)")
def test_torchmetrics_agrees_with_the_reference(random_probs):
    from torchmetrics.functional.classification import multiclass_calibration_error
    probs, target = random_probs
    for norm in npc.NORMS:
        theirs = multiclass_calibration_error(torch.from_numpy(probs), torch.from_numpy(target),
                                              4, n_bins=12, norm=norm)
        expected = reference_ece(probs, target, 12, norm, "uniform", "top-label")
        assert float(theirs) == pytest.approx(expected, rel=1e-6)


# --- verify -----------------------------------------------------------------------------------
def test_copies_verify_and_broken_copies_are_caught(tmp_path):
    source = tmp_path / "mine.py"
    source.write_text(
        "import numpy as np\n"
        "import torch\n"
        "from numpy_impl.evaluation import calibration as npc\n"
        "from torch_impl.evaluation import calibration as tc\n"
        "class MyTemperatureScaling(npc.TemperatureScaling):\n"
        "    pass\n"
        "class HalfGradTemperatureScaling(npc.TemperatureScaling):\n"
        "    def backward(self, grad_output):\n"
        "        grad = super().backward(grad_output)\n"
        "        self.temperature.grad *= 0.5  # forgot a factor\n"
        "        return grad\n"
        "class MyCalibrationError(tc.CalibrationError):\n"
        "    pass\n"
        "class SummedClasswiseCalibrationError(tc.CalibrationError):\n"
        "    def __call__(self, probs, target):\n"
        "        error = super().__call__(probs, target)\n"
        "        if self.mode == 'classwise':  # summed over classes, not averaged\n"
        "            error = error * probs.shape[1]\n"
        "        return error\n")
    assert verify("calibration", load(f"{source}:MyTemperatureScaling")).passed
    assert verify("calibration", load(f"{source}:MyCalibrationError")).passed
    broken = verify("calibration", load(f"{source}:HalfGradTemperatureScaling"))
    assert not broken.passed
    failing = {d.name for d in broken.diffs if not d.passed}
    assert "grad.param.temperature" in failing and "fit.temperature" in failing
    broken = verify("calibration", load(f"{source}:SummedClasswiseCalibrationError"))
    failing = {d.name for d in broken.diffs if not d.passed}
    assert failing and all(".classwise." in name for name in failing)
    assert "ece.uniform.classwise.l1" in failing


def test_reliability_plot_is_written(tmp_path):
    paths = cmp.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["calibration_reliability.png"]
    assert Path(paths[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
