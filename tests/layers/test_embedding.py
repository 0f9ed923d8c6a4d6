"""Focused tests for Embedding: initialization, padding, options and index errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from numpy_impl import random as numpy_random
from numpy_impl.layers.embedding import Embedding as NumpyEmbedding
from torch_impl.layers.embedding import Embedding as TorchEmbedding

TWINS = (NumpyEmbedding, TorchEmbedding)


@pytest.mark.parametrize("padding_idx", [None, 0, 3, -1, -5])
def test_padding_idx_normalized_and_row_zeroed_like_the_builtin(padding_idx):
    builtin = nn.Embedding(5, 4, padding_idx=padding_idx)
    for cls in TWINS:
        layer = cls(5, 4, padding_idx=padding_idx)
        assert layer.padding_idx == builtin.padding_idx
        assert list(layer.state_dict()) == list(builtin.state_dict()) == ["weight"]
        weight = np.asarray(layer.state_dict()["weight"])
        assert weight.shape == (5, 4) and weight.dtype == np.float32
        if padding_idx is not None:
            np.testing.assert_array_equal(weight[builtin.padding_idx], np.zeros(4))


@pytest.mark.parametrize("padding_idx", [5, -6])
def test_padding_idx_out_of_range_raises_assertion_error_like_the_builtin(padding_idx):
    for cls in (*TWINS, nn.Embedding):
        with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
            cls(5, 4, padding_idx=padding_idx)


@pytest.mark.parametrize("option", [dict(max_norm=1.0), dict(scale_grad_by_freq=True),
                                    dict(sparse=True)])
def test_unsupported_options_raise_value_error_naming_them(option):
    (name,) = option
    for cls in TWINS:
        with pytest.raises(ValueError, match=name):
            cls(5, 4, **option)


def test_init_is_standard_normal():
    """4000 N(0, 1) draws: the sample mean has sd 1/sqrt(4000) = 0.016 and the sample sd
    about 0.011; bounds of 6 sd have a false-alarm rate below 1e-8."""
    numpy_random.manual_seed(0)
    weight = NumpyEmbedding(1000, 4).weight.data
    assert abs(weight.mean()) < 6 / np.sqrt(4000)
    assert abs(weight.std() - 1) < 6 * np.sqrt(1 / (2 * 4000))


@pytest.mark.parametrize("bad", [[5], [-1], [0, 7]])
def test_index_out_of_range_raises_index_error_in_all_three(bad):
    """Negative indices too: plain NumPy and torch indexing would wrap them around."""
    indices = np.array(bad)
    for call in (lambda: NumpyEmbedding(5, 2)(indices),
                 lambda: TorchEmbedding(5, 2)(torch.from_numpy(indices)),
                 lambda: nn.Embedding(5, 2)(torch.from_numpy(indices))):
        with pytest.raises(IndexError, match="index out of range in self"):
            call()


def test_float_indices_raise_runtime_error_in_all_three():
    indices = np.array([1.0, 2.0])
    for call in (lambda: NumpyEmbedding(5, 2)(indices),
                 lambda: TorchEmbedding(5, 2)(torch.from_numpy(indices)),
                 lambda: nn.Embedding(5, 2)(torch.from_numpy(indices))):
        with pytest.raises(RuntimeError):
            call()


def test_repeated_indices_accumulate_and_padding_gets_nothing():
    layer = NumpyEmbedding(4, 2, padding_idx=0).double()
    indices = np.array([[1, 1, 0], [3, 1, 0]])
    g = np.arange(12.0).reshape(2, 3, 2)
    out = layer(indices)
    np.testing.assert_array_equal(out, layer.weight.data[indices])
    assert layer.backward(g) is None
    expected = np.zeros((4, 2))
    expected[1] = g[0, 0] + g[0, 1] + g[1, 1]                # read three times
    expected[3] = g[1, 0]
    np.testing.assert_array_equal(layer.weight.grad, expected)  # row 0 (padding) and 2: zero


def test_zero_dimensional_index_matches_the_builtin():
    """A 0-d index gives a (dim,) row; the case runner cannot pass 0-d inputs, so here."""
    numpy_layer = NumpyEmbedding(5, 3).double()
    builtin = nn.Embedding(5, 3).double()
    builtin.load_state_dict({"weight": torch.from_numpy(numpy_layer.weight.data)})
    torch_layer = TorchEmbedding(5, 3).double()
    torch_layer.load_state_dict(builtin.state_dict())
    index = np.array(2)
    g = np.array([0.5, -1.0, 2.0])
    y = numpy_layer(index)
    numpy_layer.backward(g)
    for module in (builtin, torch_layer):
        yt = module(torch.from_numpy(index))
        yt.backward(torch.from_numpy(g))
        assert tuple(yt.shape) == y.shape == (3,)
        np.testing.assert_array_equal(yt.detach().numpy(), y)
        np.testing.assert_array_equal(module.weight.grad.numpy(), numpy_layer.weight.grad)
