"""Focused tests of the activations: the hand-written erf, the edge semantics the agreement
suite cannot express (warnings, errors, subgradients, overflow), and dtype preservation."""
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from numpy_impl.layers import activations as npa
from torch_impl.layers import activations as tha


def _grid() -> np.ndarray:
    """A dense grid over [-8, 8] (both tails past the cutoff 6), tiny magnitudes, and around
    the cutoff itself."""
    tiny = np.geomspace(1e-300, 1e-2, 400)
    return np.concatenate([np.linspace(-8.0, 8.0, 8001), tiny, -tiny,
                           np.linspace(5.9, 6.1, 201), -np.linspace(5.9, 6.1, 201)])


def test_erf_float64_matches_math_erf_to_a_few_ulps():
    x = _grid()
    expected = np.array([math.erf(v) for v in x])
    got = npa.erf(x)
    assert got.dtype == np.float64
    zero = expected == 0.0
    assert np.array_equal(got[zero], expected[zero])
    relative = np.abs(got[~zero] - expected[~zero]) / np.abs(expected[~zero])
    assert relative.max() <= 4e-15, relative.max()


def test_erf_float32_matches_math_erf_in_float32_precision():
    x = _grid().astype(np.float32)
    expected = np.array([math.erf(float(v)) for v in x])
    got = npa.erf(x)
    assert got.dtype == np.float32
    normal = np.abs(expected) >= np.finfo(np.float32).tiny  # subnormal outputs lose digits
    relative = np.abs(got[normal] - expected[normal]) / np.abs(expected[normal])
    assert relative.max() <= 16 * np.finfo(np.float32).eps
    assert np.max(np.abs(got[~normal] - expected[~normal])) <= 2e-45  # one subnormal step


def test_erf_of_special_values():
    got = npa.erf(np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 100.0, -100.0]))
    assert got[0] == 1.0 and got[1] == -1.0 and np.isnan(got[2])
    assert got[3] == 0.0 and got[4] == 0.0 and np.signbit(got[4])
    assert got[5] == 1.0 and got[6] == -1.0


def test_relu_gradient_at_zero_is_zero_in_every_implementation():
    x = np.array([-1.0, 0.0, 2.0])
    g = np.array([3.0, 5.0, 7.0])
    relu = npa.ReLU()
    relu(x)
    assert np.array_equal(relu.backward(g), [0.0, 0.0, 7.0])
    for module in (tha.ReLU(), nn.ReLU()):
        xt = torch.tensor(x, requires_grad=True)
        module(xt).backward(torch.tensor(g))
        assert xt.grad.tolist() == [0.0, 0.0, 7.0]


def test_relu_of_minus_infinity_is_zero_not_nan():
    assert npa.ReLU()(np.array([-np.inf, np.inf])).tolist() == [0.0, np.inf]
    assert tha.ReLU()(torch.tensor([-np.inf, np.inf])).tolist() == [0.0, np.inf]


def test_relu_matches_torch_on_nan_inputs_and_infinite_upstream_gradients():
    # torch: relu(NaN) = NaN and its gradient passes g there; an infinite g at a dead unit
    # gives 0 (threshold_backward is a where, not a product with the mask)
    x = np.array([np.nan, -1.0, 0.0, 2.0, -np.inf])
    g = np.array([1.0, np.inf, -np.inf, 3.0, np.nan])
    relu = npa.ReLU()
    y = relu(x)
    dx = relu.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.relu(xt)
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    assert dx.tolist()[1:] == [0.0, 0.0, 3.0, 0.0]
    relu(np.array([-1.0, 0.0, 2.0]))  # finite g: the fast path; no -0.0 from g < 0 times 0
    assert not np.signbit(relu.backward(np.array([-5.0, -5.0, -5.0]))[:2]).any()


def test_blockwise_evaluation_is_bitwise_the_whole_array_evaluation():
    # erf and the GELU chains run on cache-sized blocks: the same numbers, bit for bit
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        x = (3 * rng.standard_normal(3 * npa._BLOCK + 17)).astype(dtype)
        g = rng.standard_normal(x.size).astype(dtype)
        whole = np.concatenate([npa._erf_flat(x[:npa._BLOCK]), npa._erf_flat(x[npa._BLOCK:])])
        np.testing.assert_array_equal(npa.erf(x), whole)
        cdf = npa.normal_cdf(x)
        np.testing.assert_array_equal(npa.gelu_backward(g, x, cdf=cdf),
                                      npa._gelu_backward(g, x, cdf))
        np.testing.assert_array_equal(npa.gelu(x, "tanh"), npa._gelu_tanh(x))
        assert npa.erf(x).dtype == dtype


def test_sigmoid_gradient_at_zero_is_one_quarter_in_both_twins():
    # A torch twin written with exp(-x.abs()) gets 0 here: abs has derivative 0 at 0.
    sig = npa.Sigmoid()
    sig(np.array([0.0]))
    assert sig.backward(np.array([1.0])).tolist() == [0.25]
    xt = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
    tha.Sigmoid()(xt).backward(torch.ones(1, dtype=torch.float64))
    assert xt.grad.tolist() == [0.25]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturating_functions_do_not_overflow(dtype):
    x = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        assert npa.sigmoid(x).tolist() == [[0.0, pytest.approx(math.exp(-50.0), rel=1e-6),
                                            0.5, 1.0, 1.0]]
        assert npa.softplus(x)[0, [0, 2, 4]].tolist() == [0.0, pytest.approx(math.log(2.0)),
                                                          1e4]
        assert npa.softmax(x, 1).tolist() == [[0.0, 0.0, 0.0, 0.0, 1.0]]
        assert npa.log_softmax(x, 1)[0, [0, 4]].tolist() == [-2e4, 0.0]


@pytest.mark.parametrize("cls", ["ReLU", "Tanh", "Sigmoid", "GELU", "Softmax", "LogSoftmax"])
def test_float32_in_float32_out(cls):
    x = np.linspace(-3.0, 3.0, 12, dtype=np.float32).reshape(3, 4)
    module = getattr(npa, cls)(**({"dim": 1} if "Softmax" in cls else {}))
    y = module(x)
    dx = module.backward(np.ones_like(y))
    assert y.dtype == np.float32 and dx.dtype == np.float32
    expected = getattr(nn, cls)(**({"dim": 1} if "Softmax" in cls else {}))(torch.from_numpy(x))
    # atol: GELU's 1 + erf(x/√2) cancels for x ~ -3 in float32 (y ~ -4e-3, ~1e-7 off either way)
    np.testing.assert_allclose(y, expected.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape, dim", [((5,), 0), ((3, 4), 1), ((3, 2, 4), 0), ((2, 3, 2, 2), 1)])
def test_implicit_dim_warns_and_matches_torch(cls, shape, dim):
    x = np.random.default_rng(0).standard_normal(shape)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y_numpy = getattr(npa, cls)()(x)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y_twin = getattr(tha, cls)()(torch.from_numpy(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y_builtin = getattr(nn, cls)()(torch.from_numpy(x))
    y_explicit = getattr(nn, cls)(dim=dim)(torch.from_numpy(x))
    np.testing.assert_allclose(y_numpy, y_explicit.numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(y_twin.numpy(), y_builtin.numpy(), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax"])
def test_zero_dim_input_matches_torch(cls):
    module = getattr(npa, cls)(dim=0)
    y = module(np.array(1.5))
    dx = module.backward(np.array(2.0))
    xt = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    yt = getattr(nn, cls)(dim=0)(xt)
    yt.backward(torch.tensor(2.0, dtype=torch.float64))
    assert y.shape == () and dx.shape == ()
    assert float(y) == yt.item() and float(dx) == xt.grad.item()


@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax"])
def test_dim_out_of_range_raises_index_error_in_both_twins(cls):
    x = np.zeros((2, 3))
    with pytest.raises(IndexError):
        getattr(npa, cls)(dim=2)(x)
    with pytest.raises(IndexError):
        getattr(tha, cls)(dim=2)(torch.from_numpy(x))
    with pytest.raises(IndexError):
        getattr(nn, cls)(dim=2)(torch.from_numpy(x))


def test_gelu_rejects_an_unknown_approximation_in_both_twins():
    with pytest.raises(ValueError, match="approximate"):
        npa.GELU(approximate="sigmoid")
    with pytest.raises(ValueError, match="approximate"):
        tha.GELU(approximate="sigmoid")


def test_gelu_closed_forms_at_one():
    # The tanh form is an approximation of x Φ(x): at x = 1 the two differ by -1.53e-4.
    x = np.array([1.0])
    exact, approx = npa.gelu(x)[0], npa.gelu(x, "tanh")[0]
    assert exact == pytest.approx(0.5 * (1 + math.erf(1 / math.sqrt(2))), rel=1e-15)
    u = math.sqrt(2 / math.pi) * (1 + 0.044715)
    assert approx == pytest.approx(0.5 * (1 + math.tanh(u)), rel=1e-15)
    assert approx - exact == pytest.approx(-1.5276e-4, rel=1e-3)


def test_softmax_backward_of_ones_is_zero():
    # Why the upstream gradient is random, never ones (README, "What a comparison does").
    y = npa.softmax(np.random.default_rng(1).standard_normal((3, 5)), -1)
    assert np.abs(npa.softmax_backward(np.ones_like(y), y, -1)).max() < 1e-16


def test_relu_inplace_overwrites_its_input_and_keeps_the_gradient():
    x = np.array([-1.0, 0.0, 2.0, -3.0])
    relu = npa.ReLU(inplace=True)
    y = relu(x)
    assert y is x and x.tolist() == [0.0, 0.0, 2.0, 0.0]
    assert relu.backward(np.array([1.0, 2.0, 3.0, 4.0])).tolist() == [0.0, 0.0, 3.0, 0.0]
    xt = torch.tensor([-1.0, 0.0, 2.0, -3.0], requires_grad=True)
    yt = tha.ReLU(inplace=True)(xt * 1.0)  # in place on a non-leaf, as torch requires
    yt.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert yt.tolist() == [0.0, 0.0, 2.0, 0.0] and xt.grad.tolist() == [0.0, 0.0, 3.0, 0.0]


@pytest.mark.parametrize("twin, kernels", [
    ("Tanh", ("tanh",)), ("ReLU", ("relu",)), ("Sigmoid", ("sigmoid",)), ("GELU", ("gelu",)),
    ("Softmax", ("softmax",)), ("LogSoftmax", ("log_softmax",))])
def test_the_torch_twins_do_not_call_the_kernel_their_witness_runs(monkeypatch, twin, kernels):
    """A witness checks another computation: with the witness's kernel made to fail (in torch
    and torch.nn.functional), the torch twin still runs."""
    import torch.nn.functional as F

    from torch_impl.layers import activations as twins

    def forbidden(*args, **kwargs):
        raise AssertionError("the twin ran its witness's kernel")
    for owner in (torch, F):
        for name in kernels:
            if hasattr(owner, name):
                monkeypatch.setattr(owner, name, forbidden)
    module = getattr(twins, twin)(dim=-1) if "Softmax" in twin else getattr(twins, twin)()
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    module(x).sum().backward()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_keeps_both_tails_without_warnings(dtype):
    """sigmoid computes 1 / (1 + e^{-x}) in place: full relative accuracy far out on both
    tails (20 and -20 in float32, where 0.5 + 0.5 tanh(x / 2) gives exactly 0), the limits 0
    and 1 where e^{-x} overflows, NaN kept, and no overflow warning."""
    import math
    import warnings

    from numpy_impl.layers.activations import sigmoid
    x = np.array([-1000.0, -80.0, -20.0, -1.0, 0.0, 1.0, 20.0, 1000.0, np.nan], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = sigmoid(x)
    assert y.dtype == dtype
    exact = np.array([0.0 if v < -700 else 1.0 / (1.0 + math.exp(-float(v)))
                      for v in x[:-1]])
    tiny = exact > np.finfo(dtype).tiny
    np.testing.assert_allclose(y[:-1][tiny], exact[tiny], rtol=4 * np.finfo(dtype).eps)
    assert y[0] == 0.0 and y[7] == 1.0 and np.isnan(y[-1])
