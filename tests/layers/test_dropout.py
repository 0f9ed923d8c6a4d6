"""Focused tests for Dropout: the F.dropout witness, the twins' own masks, the edge values of p."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from numpy_impl import random as numpy_random
from numpy_impl.layers.dropout import Dropout as NumpyDropout
from torch_impl.layers.dropout import Dropout as TorchDropout

TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-6}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_builtin_witness_replayed_through_both_twins(p, dtype):
    """F.dropout draws its own mask; recover it from the zeros of its output (x has none),
    replay it through both twins: outputs and input gradients must equal F.dropout's."""
    torch.manual_seed(0)
    x = torch.randn(6, 7, dtype=dtype)
    x = (x.sign() * (x.abs() + 0.1)).requires_grad_()      # no zero can hide a kept element
    g = torch.randn(6, 7, dtype=dtype)
    out = F.dropout(x, p, training=True)
    out.backward(g)
    mask = out.detach() != 0
    assert 0 < mask.sum() < mask.numel()                   # a real mix of kept and dropped
    rtol = TOLERANCE[dtype]

    numpy_layer = NumpyDropout(p)
    numpy_out = numpy_layer(x.detach().numpy(), mask.numpy())
    np.testing.assert_allclose(numpy_out, out.detach().numpy(), rtol=rtol)
    np.testing.assert_allclose(numpy_layer.backward(g.numpy()), x.grad.numpy(), rtol=rtol)

    x_twin = x.detach().clone().requires_grad_()
    torch_out = TorchDropout(p)(x_twin, mask)
    torch_out.backward(g)
    np.testing.assert_allclose(torch_out.detach().numpy(), out.detach().numpy(), rtol=rtol)
    np.testing.assert_allclose(x_twin.grad.numpy(), x.grad.numpy(), rtol=rtol)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_each_twins_own_mask_keeps_one_minus_p(p):
    """n = 200,000 Bernoulli(1 - p) draws: the kept count has standard deviation
    sqrt(n p (1 - p)) <= 224; a 6-sigma bound has false-alarm rate 2e-9 per check."""
    n = 200_000
    bound = 6 * np.sqrt(n * p * (1 - p))
    numpy_random.manual_seed(123)
    x = np.ones(n)
    kept_numpy = np.count_nonzero(NumpyDropout(p)(x))
    torch.manual_seed(123)
    kept_torch = int(torch.count_nonzero(TorchDropout(p)(torch.ones(n, dtype=torch.float64))))
    for kept in (kept_numpy, kept_torch):
        assert abs(kept - n * (1 - p)) < bound
    # kept elements are scaled by 1 / (1 - p): the expected output equals the input
    y = NumpyDropout(p)(x)
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-15)


def test_own_mask_is_reused_by_backward():
    numpy_random.manual_seed(7)
    layer = NumpyDropout(0.5)
    x = np.arange(1.0, 21.0)
    y = layer(x)
    dx = layer.backward(np.ones(20))
    np.testing.assert_array_equal(dx != 0, y != 0)
    np.testing.assert_allclose(dx[dx != 0], 2.0, rtol=1e-15)


def test_p_one_gives_zeros_and_zero_gradient_like_the_builtin():
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    out = TorchDropout(1.0)(x)
    out.backward(torch.ones(4, 5, dtype=torch.float64))
    np.testing.assert_array_equal(out.detach().numpy(), F.dropout(x, 1.0).detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((4, 5)))
    layer = NumpyDropout(1.0)
    np.testing.assert_array_equal(layer(x.detach().numpy()), np.zeros((4, 5)))
    np.testing.assert_array_equal(layer.backward(np.ones((4, 5))), np.zeros((4, 5)))


def test_p_zero_and_eval_are_the_identity_without_a_mask():
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(NumpyDropout(0.0)(x), x)
    layer = NumpyDropout(0.7).eval()
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(2 * x), 2 * x)
    xt = torch.from_numpy(x)
    np.testing.assert_array_equal(TorchDropout(0.7).eval()(xt).numpy(), x)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_invalid_probability_raises_the_builtins_value_error(p):
    messages = []
    for cls in (NumpyDropout, TorchDropout, torch.nn.Dropout):
        with pytest.raises(ValueError) as error:
            cls(p)
        messages.append(str(error.value))
    assert messages[0] == messages[1] == messages[2]


def test_mask_of_the_wrong_shape_raises_value_error_in_both_twins():
    x = np.ones((2, 3))
    mask = np.ones((3, 2), dtype=bool)
    with pytest.raises(ValueError, match="does not match"):
        NumpyDropout(0.5)(x, mask)
    with pytest.raises(ValueError, match="does not match"):
        TorchDropout(0.5)(torch.from_numpy(x), torch.from_numpy(mask))


def test_inplace_overwrites_the_input_in_both_twins():
    mask = np.array([[True, False, True]])
    x = np.array([[1.0, 2.0, 3.0]])
    y = NumpyDropout(0.5, inplace=True)(x, mask)
    assert y is x
    np.testing.assert_array_equal(x, [[2.0, 0.0, 6.0]])
    xt = torch.tensor([[1.0, 2.0, 3.0]])
    yt = TorchDropout(0.5, inplace=True)(xt, torch.from_numpy(mask))
    assert yt.data_ptr() == xt.data_ptr()
    np.testing.assert_array_equal(xt.numpy(), [[2.0, 0.0, 6.0]])


def test_float32_stays_float32():
    x = np.ones((3, 3), dtype=np.float32)
    layer = NumpyDropout(0.3)
    y = layer(x, np.eye(3, dtype=bool))
    assert y.dtype == layer.backward(x).dtype == np.float32
