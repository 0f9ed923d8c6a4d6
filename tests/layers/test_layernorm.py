"""Focused tests for LayerNorm: what the generic case suite cannot see."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from numpy_impl.layers.layernorm import LayerNorm as NumpyLayerNorm
from torch_impl.layers.layernorm import LayerNorm as TorchLayerNorm

CONFIGS = [
    dict(normalized_shape=4),
    dict(normalized_shape=(3, 4)),
    dict(normalized_shape=[4], elementwise_affine=False),
    dict(normalized_shape=4, bias=False),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_state_dict_keys_and_shapes_match_the_builtin(config):
    builtin = nn.LayerNorm(**config).state_dict()
    for state in (NumpyLayerNorm(**config).state_dict(), TorchLayerNorm(**config).state_dict()):
        assert list(state) == list(builtin)
        for key, value in builtin.items():
            assert tuple(state[key].shape) == tuple(value.shape)
            np.testing.assert_array_equal(np.asarray(state[key]), value.numpy())


def test_wrong_trailing_shape_raises_runtime_error_like_the_builtin():
    x = np.zeros((2, 4, 3))
    messages = []
    for call in (lambda: NumpyLayerNorm((3, 4))(x),
                 lambda: TorchLayerNorm((3, 4))(torch.from_numpy(x)),
                 lambda: nn.LayerNorm((3, 4)).double()(torch.from_numpy(x))):
        with pytest.raises(RuntimeError) as error:
            call()
        messages.append(str(error.value))
    assert messages[0] == messages[1] == messages[2]


def test_constant_rows_give_beta_and_the_eps_limited_gradient():
    """var = 0: xhat = 0, y = beta, dL/dx = (dxhat - mean(dxhat)) / sqrt(eps)."""
    rng = np.random.default_rng(1)
    x = np.full((3, 5), 0.7)
    g = rng.standard_normal((3, 5))
    layer = NumpyLayerNorm(5).double()
    layer.weight.data[:] = rng.standard_normal(5)
    layer.bias.data[:] = rng.standard_normal(5)
    y = layer(x)
    dx = layer.backward(g)
    np.testing.assert_allclose(y, np.broadcast_to(layer.bias.data, (3, 5)), atol=1e-12)
    dxhat = g * layer.weight.data
    expected = (dxhat - dxhat.mean(axis=1, keepdims=True)) / np.sqrt(1e-5)
    np.testing.assert_allclose(dx, expected, rtol=1e-9, atol=1e-9)
    # and torch's built-in agrees
    builtin = nn.LayerNorm(5).double()
    builtin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    xt = torch.from_numpy(x).requires_grad_()
    builtin(xt).backward(torch.from_numpy(g))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-9)


def test_one_feature_output_is_bias_and_gradients_are_exactly_zero():
    x = np.random.default_rng(2).standard_normal((4, 1))
    g = np.random.default_rng(3).standard_normal((4, 1))
    numpy_layer = NumpyLayerNorm(1).double()
    numpy_layer.bias.data[:] = 0.25
    torch_layer = TorchLayerNorm(1).double()
    torch_layer.load_state_dict({k: torch.from_numpy(v) for k, v in
                                 numpy_layer.state_dict().items()})
    np.testing.assert_array_equal(numpy_layer(x), np.full((4, 1), 0.25))
    np.testing.assert_array_equal(numpy_layer.backward(g), np.zeros((4, 1)))
    np.testing.assert_array_equal(numpy_layer.weight.grad, np.zeros(1))
    xt = torch.from_numpy(x).requires_grad_()
    torch_layer(xt).backward(torch.from_numpy(g))
    np.testing.assert_array_equal(xt.grad.numpy(), np.zeros((4, 1)))


def test_parameter_gradients_accumulate_across_backward_calls():
    rng = np.random.default_rng(4)
    x, g = rng.standard_normal((3, 6)), rng.standard_normal((3, 6))
    layer = NumpyLayerNorm(6).double()
    layer(x)
    layer.backward(g)
    once = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once[0], rtol=1e-14)
    np.testing.assert_allclose(layer.bias.grad, 2 * once[1], rtol=1e-14)


def test_float32_stays_float32():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    layer = NumpyLayerNorm((3, 4))
    y = layer(x)
    dx = layer.backward(np.ones_like(y) * 0.5)
    assert y.dtype == dx.dtype == layer.weight.grad.dtype == np.float32
    # and the result is standardized: mean 0, variance var/(var + eps) per sample
    assert np.abs(y.mean(axis=(1, 2))).max() < 1e-6
    assert np.abs(y.var(axis=(1, 2)) - 1).max() < 1e-3
