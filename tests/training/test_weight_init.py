"""Focused tests of weight initialization: known gains and fans, errors, each twin against the
exact target distribution, the torch twin bitwise equal to torch.nn.init, the statistical
test's power against wrong inits, verify, and the tanh-MLP plot."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from compare.concept import Trial
from compare.training import weight_init as cmp
from compare.verify import verify
from numpy_impl import manual_seed
from numpy_impl.training import weight_init as npi
from torch_impl.training import weight_init as thi


@pytest.mark.parametrize("nonlinearity, param, expected", [
    ("linear", None, 1.0), ("conv3d", None, 1.0), ("sigmoid", None, 1.0),
    ("tanh", None, 5.0 / 3.0), ("relu", None, math.sqrt(2.0)),
    ("leaky_relu", None, math.sqrt(2.0 / (1.0 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2.0 / 1.04)), ("leaky_relu", 1, 1.0), ("selu", None, 0.75)])
def test_gains_are_known_values_in_both_twins(nonlinearity, param, expected):
    assert npi.calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-15)
    assert thi.calculate_gain(nonlinearity, param) == nn.init.calculate_gain(nonlinearity, param)
    assert npi.calculate_gain(nonlinearity, param) == thi.calculate_gain(nonlinearity, param)


def test_fans_of_matrices_and_kernels():
    assert npi._calculate_fan_in_and_fan_out(np.zeros((5, 3))) == (3, 5)
    assert npi._calculate_fan_in_and_fan_out(np.zeros((8, 2, 3, 5))) == (30, 120)
    assert thi._calculate_fan_in_and_fan_out(torch.zeros(8, 2, 3, 5)) == (30, 120)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        npi.xavier_uniform_(np.zeros(4))
    with pytest.raises(ValueError, match="Mode fan_middle not supported"):
        npi.kaiming_normal_(np.zeros((3, 3)), mode="fan_middle")
    with pytest.raises(ValueError, match="Unsupported nonlinearity softsign"):
        npi.calculate_gain("softsign")
    with pytest.raises(ValueError, match="not a valid number"):
        npi.calculate_gain("leaky_relu", True)
    with pytest.raises(ValueError, match="scheme must be one of"):
        npi.Initialized((3, 3), "orthogonal")


def test_zero_element_tensor_is_left_alone():
    empty = np.zeros((0, 3))
    assert npi.kaiming_uniform_(empty) is empty and empty.shape == (0, 3)


def test_default_init_bounds_are_one_over_sqrt_fan_in():
    manual_seed(0)
    layer = npi.Initialized((4000, 25), "default", bias=True)
    bound = 1.0 / math.sqrt(25)
    for p in (layer.weight.data, layer.bias.data):
        assert np.max(np.abs(p)) <= bound
        assert np.max(np.abs(p)) > 0.99 * bound      # the interval is filled to its ends
    assert layer.weight.data.dtype == np.float32     # the default dtype, as torch


@pytest.mark.parametrize("case", [c for c in cmp.CASES if "shape" in c.init], ids=lambda c: c.name)
def test_each_twin_matches_the_exact_target(case):
    """One-sample tests against U(-b, b) / N(0, s^2) as documented, per-test level 1e-5."""
    trial = Trial("float64", seed=3)
    with cmp.default_dtype(trial):
        manual_seed(3)
        numpy_params = cmp._parameters(case.numpy(**case.init))
        torch.manual_seed(3)
        torch_params = cmp._parameters(case.torch(**case.init))
    for params in (numpy_params, torch_params):
        for name, sample in params.items():
            assert sample.dtype == np.float64
            dist = cmp.target(case.init["shape"], case.init["scheme"], name, **cmp._options(case))
            ratios = cmp.target_ratios(sample, dist, 1e-5)
            assert max(ratios.values()) <= 1.0, (name, ratios)


@pytest.mark.parametrize("scheme, options", [
    ("xavier_uniform", {"gain": 1.5}), ("xavier_normal", {}),
    ("kaiming_uniform", {"a": 0.1, "mode": "fan_out"}),
    ("kaiming_normal", {"nonlinearity": "relu"})])
def test_torch_twin_is_bitwise_torch_nn_init(scheme, options):
    torch.manual_seed(7)
    twin = getattr(thi, f"{scheme}_")(torch.empty(30, 20, 3), **options)
    torch.manual_seed(7)
    builtin = getattr(nn.init, f"{scheme}_")(torch.empty(30, 20, 3), **options)
    assert torch.equal(twin, builtin)


def test_torch_twin_default_is_bitwise_nn_linear_and_conv2d():
    torch.manual_seed(1)
    twin = thi.Initialized((6, 5), "default", bias=True)
    torch.manual_seed(1)
    layer = nn.Linear(5, 6)
    assert torch.equal(twin.weight, layer.weight) and torch.equal(twin.bias, layer.bias)
    torch.manual_seed(2)
    twin = thi.Initialized((6, 5, 3, 3), "default", bias=True)
    torch.manual_seed(2)
    conv = nn.Conv2d(5, 6, 3)
    assert torch.equal(twin.weight, conv.weight) and torch.equal(twin.bias, conv.bias)


def test_critical_values_are_the_stated_bounds():
    bounds = cmp.critical_values(10_000, "normal", 1e-3)
    log_term = math.log(2e3)
    assert bounds["ecdf"] == pytest.approx(math.sqrt(log_term / 2e4), rel=1e-14)  # DKW
    assert bounds["mean"] == pytest.approx(math.sqrt(2 * log_term / 1e4), rel=1e-14)
    # Bernstein for the uniform mean: n u^2 = L (2 + 2 sqrt(3) u / 3) holds at the root
    u = cmp.critical_values(10_000, "uniform", 1e-3)["mean"]
    assert 1e4 * u * u == pytest.approx(log_term * (2 + 2 * math.sqrt(3) * u / 3), rel=1e-12)
    assert cmp.N_TESTS == 90 and cmp.ALPHA_PER_TEST == pytest.approx(1e-3 / 90)


def test_a_copy_of_the_numpy_class_verifies():
    class MyInitialized(npi.Initialized):
        pass
    report = verify("weight_init", MyInitialized)
    assert report.passed, report.table()
    assert any(d.check == "yours-vs-torch" and d.name == "weight/ecdf" for d in report.diffs)


class _TooWide(npi.Initialized):
    def reset_parameters(self):
        super().reset_parameters()
        self.weight.data *= 1.05                      # std 5% too large


class _UniformForNormal(npi.Initialized):
    def reset_parameters(self):
        super().reset_parameters()
        if self.scheme.endswith("normal"):            # the right variance, the wrong shape
            std = float(np.std(self.weight.data))
            self.weight.data[...] = np.random.default_rng(0).uniform(
                -math.sqrt(3) * std, math.sqrt(3) * std, self.weight.shape)


@pytest.mark.parametrize("wrong, statistic", [(_TooWide, "second_moment"),
                                              (_UniformForNormal, "ecdf")])
def test_wrong_inits_are_caught_by_the_right_statistic(wrong, statistic):
    report = verify("weight_init", wrong)
    assert not report.passed
    failing = {d.name.split("/")[1] for d in report.failures if d.check == "yours-vs-torch"}
    assert statistic in failing


def test_tanh_mlp_histograms_show_saturation_and_shrinking(tmp_path):
    saturated, _ = cmp.tanh_mlp_histograms("N(0,1)")
    shrinking, _ = cmp.tanh_mlp_histograms("default")
    good, grads = cmp.tanh_mlp_histograms("kaiming-tanh")
    assert np.mean(np.abs(saturated[-1]) > 0.97) > 0.5          # most units saturated
    assert shrinking[-1].std() < 0.1 * shrinking[0].std()       # activations collapse
    assert 0.5 < good[-1].std() < 0.8                           # the spread is kept
    assert 0.5 < grads[0].std() / grads[-1].std() < 2.0         # and so are the gradients
    paths = cmp.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["weight_init_tanh_mlp.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
