"""Focused tests for positional encodings: the sinusoidal table's known values, its exact
agreement between the twins, shift-invariant similarity, the gradient flowing to the input
only; learned rows accumulating over the batch; verify with a broken copy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from compare.verify import verify
from numpy_impl.transformer import positional_encoding as npe
from torch_impl.transformer import positional_encoding as tpe


def test_sinusoidal_known_values():
    table = npe.sinusoidal_table(50, 6)
    t = np.arange(50)
    np.testing.assert_array_equal(table[0], [0, 1, 0, 1, 0, 1])     # sin 0, cos 0
    np.testing.assert_allclose(table[:, 0], np.sin(t), rtol=0, atol=1e-15)
    np.testing.assert_allclose(table[:, 1], np.cos(t), rtol=0, atol=1e-15)
    np.testing.assert_allclose(table[:, 4], np.sin(t / 10000 ** (4 / 6)), rtol=0, atol=1e-15)
    odd = npe.sinusoidal_table(10, 5)                                   # 3 sines, 2 cosines
    np.testing.assert_allclose(odd[:, 3], np.cos(np.arange(10) / 10000 ** (2 / 5)), atol=1e-15)
    np.testing.assert_allclose(odd[:, 4], np.sin(np.arange(10) / 10000 ** (4 / 5)), atol=1e-15)


def test_twins_tables_are_bitwise_equal_in_float32_and_within_ulps_in_float64():
    """The same formula in both libraries: NumPy's and torch's pow round 10000^{2i/C}
    differently, so the float64 angles t / 10000^{2i/C} may differ by an ulp of the angle, and
    the tables by about that much (measured 5.7e-14 at t <= 511, below ulp(512) = 1.1e-13);
    rounded to float32 the tables are identical."""
    mine = npe.SinusoidalPositionalEncoding(128, max_len=512)
    twin = tpe.SinusoidalPositionalEncoding(128, max_len=512)
    assert mine.pe.dtype == np.float64 and twin.pe.dtype == torch.float64
    assert np.abs(mine.pe - twin.pe.numpy()).max() <= np.spacing(512.0)
    np.testing.assert_array_equal(mine.float().pe, twin.float().pe.numpy())
    assert mine.pe.dtype == np.float32


def test_similarity_depends_only_on_the_distance():
    table = npe.sinusoidal_table(64, 32)
    similarity = table @ table.T
    for k in (1, 5, 20):
        np.testing.assert_allclose(np.diag(similarity, k)[:-10],
                                   np.full(64 - k - 10, similarity[0, k]), atol=1e-12)
    assert np.allclose(np.diag(similarity), 16)                          # C/2 (sin^2 + cos^2)


@pytest.mark.parametrize("cls", [npe.SinusoidalPositionalEncoding,
                                 tpe.SinusoidalPositionalEncoding])
def test_sinusoidal_has_no_state_and_passes_the_gradient_to_the_input_only(cls):
    layer = cls(8, max_len=10)
    assert list(layer.state_dict()) == [] and list(layer.parameters()) == []


def test_sinusoidal_gradient_is_the_upstream_gradient():
    x = np.random.default_rng(0).standard_normal((2, 5, 8))
    g = np.random.default_rng(1).standard_normal((2, 5, 8))
    layer = npe.SinusoidalPositionalEncoding(8, 10).double()
    np.testing.assert_allclose(layer(x) - x, np.broadcast_to(layer.pe[:5], x.shape), atol=1e-15)
    assert layer.backward(g) is g
    xt = torch.from_numpy(x).requires_grad_()
    tpe.SinusoidalPositionalEncoding(8, 10)(xt).backward(torch.from_numpy(g))
    np.testing.assert_array_equal(xt.grad.numpy(), g)


def test_learned_rows_accumulate_over_the_batch():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5))
    g = rng.standard_normal((3, 4, 5))
    torch.manual_seed(0)
    reference = nn.Embedding(6, 5).double()
    layer = npe.LearnedPositionalEmbedding(6, 5).double()
    layer.load_state_dict({"embedding.weight": reference.weight.detach()})
    out = layer(x)
    np.testing.assert_array_equal(out, x + reference.weight.detach().numpy()[:4])
    dx = layer.backward(g)
    assert dx is g
    dweight = layer.embedding.weight.grad
    np.testing.assert_allclose(dweight[:4], g.sum(axis=0), rtol=1e-15)  # row t: sum_n g[n, t]
    assert np.all(dweight[4:] == 0)                                      # unused positions
    layer.backward(g)                                                    # a second backward adds
    np.testing.assert_allclose(layer.embedding.weight.grad[:4], 2 * g.sum(axis=0), rtol=1e-15)


@pytest.mark.parametrize("cls", [npe.LearnedPositionalEmbedding, tpe.LearnedPositionalEmbedding])
def test_a_sequence_longer_than_max_len_is_refused(cls):
    layer = cls(4, 3)
    x = np.zeros((1, 5, 3))
    with pytest.raises(ValueError, match="exceeds max_len 4"):
        layer(x if isinstance(layer, npe.LearnedPositionalEmbedding) else torch.from_numpy(x))


class LastSequenceOverwrites(npe.LearnedPositionalEmbedding):
    """A buffered assignment: each row keeps only one sequence's gradient."""

    def backward(self, grad_output):
        T = grad_output.shape[1]
        for n in range(grad_output.shape[0]):
            self.embedding.weight.grad[:T] = grad_output[n]
        return grad_output


def test_verify_finds_rows_that_do_not_accumulate():
    report = verify("positional_encoding:LearnedPositionalEmbedding", LastSequenceOverwrites)
    assert not report.passed and not report.error, report.error
    assert {d.name for d in report.failures} == {"grad.param.embedding.weight"}
    assert verify("positional_encoding:SinusoidalPositionalEncoding",
                  npe.SinusoidalPositionalEncoding).passed
