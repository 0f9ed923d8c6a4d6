"""Focused tests for BatchNorm1d: state across steps, modes and errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from numpy_impl.layers.batchnorm import BatchNorm1d as NumpyBatchNorm
from torch_impl.layers.batchnorm import BatchNorm1d as TorchBatchNorm

CONFIGS = [
    dict(num_features=3),
    dict(num_features=3, affine=False),
    dict(num_features=3, track_running_stats=False),
    dict(num_features=3, momentum=None),
]


def _torch_state(module):
    return {k: torch.from_numpy(np.asarray(v)) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("config", CONFIGS)
def test_state_dict_keys_dtypes_and_values_match_the_builtin(config):
    builtin = nn.BatchNorm1d(**config).state_dict()
    for state in (NumpyBatchNorm(**config).state_dict(), TorchBatchNorm(**config).state_dict()):
        assert list(state) == list(builtin)
        for key, value in builtin.items():
            np.testing.assert_array_equal(np.asarray(state[key]), value.numpy())
            assert np.asarray(state[key]).dtype == value.numpy().dtype  # int64 counter too


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1)])
def test_one_value_per_channel_in_training_raises_like_the_builtin(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    prefix = "Expected more than 1 value per channel when training, got input size"
    for call in (lambda: NumpyBatchNorm(3).double()(x),
                 lambda: TorchBatchNorm(3).double()(torch.from_numpy(x)),
                 lambda: nn.BatchNorm1d(3).double()(torch.from_numpy(x))):
        with pytest.raises(ValueError, match=prefix):
            call()


def test_one_sample_in_eval_uses_running_stats_without_error():
    x = np.random.default_rng(1).standard_normal((1, 3))
    numpy_layer = NumpyBatchNorm(3).double()
    numpy_layer.running_mean[:] = [0.5, -1.0, 2.0]
    numpy_layer.running_var[:] = [4.0, 0.25, 1.0]
    builtin = nn.BatchNorm1d(3).double()
    builtin.load_state_dict(_torch_state(numpy_layer))
    numpy_layer.eval()
    builtin.eval()
    expected = (x - numpy_layer.running_mean) / np.sqrt(numpy_layer.running_var + 1e-5)
    np.testing.assert_allclose(numpy_layer(x), expected, rtol=1e-14)
    np.testing.assert_allclose(builtin(torch.from_numpy(x)).detach().numpy(), expected,
                               rtol=1e-12)


def test_four_dimensional_input_raises_value_error_in_all_three():
    x = np.zeros((2, 3, 4, 5))
    for call in (lambda: NumpyBatchNorm(3)(x),
                 lambda: TorchBatchNorm(3)(torch.from_numpy(x)),
                 lambda: nn.BatchNorm1d(3)(torch.from_numpy(x))):
        with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
            call()


@pytest.mark.parametrize("momentum", [0.1, None])
def test_running_stats_over_several_training_steps_then_eval(momentum):
    """Three training batches, then eval: buffers and outputs follow the built-in throughout."""
    rng = np.random.default_rng(2)
    numpy_layer = NumpyBatchNorm(4, momentum=momentum).double()
    torch_layer = TorchBatchNorm(4, momentum=momentum).double()
    builtin = nn.BatchNorm1d(4, momentum=momentum).double()
    for step in range(3):
        x = rng.standard_normal((5, 4, 3)) * (step + 1) + step
        numpy_layer(x)
        torch_layer(torch.from_numpy(x))
        builtin(torch.from_numpy(x))
        numpy_state, torch_state = numpy_layer.state_dict(), torch_layer.state_dict()
        for name, value in builtin.state_dict().items():
            np.testing.assert_allclose(numpy_state[name], value.numpy(), rtol=1e-13)
            np.testing.assert_allclose(torch_state[name].numpy(), value.numpy(), rtol=1e-13)
    assert int(numpy_layer.num_batches_tracked) == 3
    assert numpy_layer.num_batches_tracked.dtype == np.int64
    for module in (numpy_layer, torch_layer, builtin):
        module.eval()
    x = rng.standard_normal((2, 4, 3))
    expected = builtin(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(numpy_layer(x), expected, rtol=1e-12)
    np.testing.assert_allclose(torch_layer(torch.from_numpy(x)).detach().numpy(), expected,
                               rtol=1e-12)
    np.testing.assert_array_equal(numpy_layer.num_batches_tracked, 3)  # eval does not count


def test_momentum_none_is_the_plain_average_of_all_batches():
    rng = np.random.default_rng(3)
    layer = NumpyBatchNorm(2, momentum=None).double()
    batches = [rng.standard_normal((6, 2)) + i for i in range(4)]
    for x in batches:
        layer(x)
    np.testing.assert_allclose(layer.running_mean, np.mean([x.mean(0) for x in batches], 0),
                               rtol=1e-13)
    np.testing.assert_allclose(layer.running_var,
                               np.mean([x.var(0, ddof=1) for x in batches], 0), rtol=1e-13)


def test_no_running_stats_normalizes_with_batch_stats_in_eval_too():
    x = np.random.default_rng(4).standard_normal((8, 3)) * 3 + 1
    layer = NumpyBatchNorm(3, affine=False, track_running_stats=False).double().eval()
    y = layer(x)
    assert layer.running_mean is None and layer.num_batches_tracked is None
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-14)
    np.testing.assert_allclose(y.var(axis=0), x.var(axis=0) / (x.var(axis=0) + 1e-5),
                               rtol=1e-12)


def test_two_values_per_channel_normalize_to_plus_minus_one_and_the_x_gradient_vanishes():
    """With M = 2, xhat = +-d/sqrt(d^2 + 4 eps): the x-gradient is only the eps residue."""
    rng = np.random.default_rng(5)
    x, g = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    layer = NumpyBatchNorm(3, affine=False).double()
    y = layer(x)
    dx = layer.backward(g)
    np.testing.assert_allclose(np.abs(y), 1, atol=1e-3)
    assert np.abs(dx).max() < 1e-2 * np.abs(g).max()
    builtin = nn.BatchNorm1d(3, affine=False).double()
    xt = torch.from_numpy(x).requires_grad_()
    builtin(xt).backward(torch.from_numpy(g))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-12)
    assert np.abs(dx).max() > 0  # not exactly zero: eps keeps it alive


def test_float32_stays_float32():
    x = np.random.default_rng(6).standard_normal((4, 3, 2)).astype(np.float32)
    layer = NumpyBatchNorm(3)
    y = layer(x)
    dx = layer.backward(y * 0.5)
    assert y.dtype == dx.dtype == layer.weight.grad.dtype == np.float32
    assert layer.running_mean.dtype == layer.running_var.dtype == np.float32
