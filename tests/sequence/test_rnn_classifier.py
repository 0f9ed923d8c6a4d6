"""Focused tests of the seed's SequenceClassifierRNN: a hand-computed answer, the seed's shapes
and init, the twins against a real nn.RNN + nn.Linear, accumulation, errors, and verify."""
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compare.verify import load, verify
from numpy_impl.sequence.rnn_classifier import SequenceClassifierRNN
from torch_impl.sequence import rnn_classifier as torch_twin

ROOT = Path(__file__).resolve().parents[2]


def test_one_unit_two_steps_by_hand():
    """h_0 = tanh(0.5·1 + 0.1), h_1 = tanh(0.5·2 + 0.8 h_0 + 0.1), y = 2 h_1 - 1, and the
    gradient of L = y written out through time."""
    model = SequenceClassifierRNN(1, 1, 1).double()
    model.load_state_dict({"W_ih": [[0.5]], "W_hh": [[0.8]], "b_h": [0.1],
                           "fc.weight": [[2.0]], "fc.bias": [-1.0]})
    x = np.array([[[1.0], [2.0]]])                                    # (B=1, T=2, I=1)
    y = model(x)
    h0 = math.tanh(0.5 * 1.0 + 0.1)
    h1 = math.tanh(0.5 * 2.0 + 0.8 * h0 + 0.1)
    np.testing.assert_allclose(y.ravel(), [2 * h1 - 1], rtol=1e-15)
    dx = model.backward(np.ones((1, 1)))
    da1 = 2.0 * (1 - h1 * h1)                                         # through fc, then tanh
    da0 = da1 * 0.8 * (1 - h0 * h0)                                   # back one step through W_hh
    np.testing.assert_allclose(dx.ravel(), [0.5 * da0, 0.5 * da1], rtol=1e-14)
    np.testing.assert_allclose(model.W_ih.grad, [[1.0 * da0 + 2.0 * da1]], rtol=1e-14)
    np.testing.assert_allclose(model.W_hh.grad, [[0.0 * da0 + h0 * da1]], rtol=1e-14)
    np.testing.assert_allclose(model.b_h.grad, [da0 + da1], rtol=1e-14)
    np.testing.assert_allclose(model.fc.weight.grad, [[h1]], rtol=1e-15)
    np.testing.assert_allclose(model.fc.bias.grad, [1.0], rtol=1e-15)


def test_the_seeds_example_shapes_names_and_init():
    torch.manual_seed(0)
    twin = torch_twin.SequenceClassifierRNN()
    model = SequenceClassifierRNN()
    assert twin(torch.randn(4, 7, 6)).shape == (4, 3)
    assert model(np.zeros((4, 7, 6), np.float32)).shape == (4, 3)
    expected = {k: tuple(v.shape) for k, v in twin.state_dict().items()}
    assert expected == {"W_ih": (6, 12), "W_hh": (12, 12), "b_h": (12,), "fc.weight": (3, 12),
                        "fc.bias": (3,)}
    assert {k: v.shape for k, v in model.state_dict().items()} == expected
    model.load_state_dict(twin.state_dict())                          # loads unchanged
    big = SequenceClassifierRNN(200, 300, 3)                          # N(0, 1), zeros: the seed's
    assert big.W_hh.data.dtype == np.float32
    assert abs(big.W_hh.data.std() - 1) < 0.01 and abs(big.W_hh.data.mean()) < 0.01
    assert np.all(big.b_h.data == 0)


def test_twins_equal_a_real_nn_rnn_and_linear_with_transposed_weights():
    """The witness's claim, with modules rather than functional_call: nn.RNN with
    weight_ih_l0 = W_ihᵀ, weight_hh_l0 = W_hhᵀ, bias_ih_l0 = b_h, bias_hh_l0 = 0."""
    torch.manual_seed(1)
    model = SequenceClassifierRNN(3, 5, 2).double()
    with torch.no_grad():
        W_ih, W_hh, b_h = (torch.randn(3, 5) * 0.5, torch.randn(5, 5) * 0.4,
                           torch.randn(5) * 0.1)
    head = nn.Linear(5, 2).double()
    model.load_state_dict({"W_ih": W_ih, "W_hh": W_hh, "b_h": b_h,
                           "fc.weight": head.weight, "fc.bias": head.bias})
    rnn = nn.RNN(3, 5, batch_first=True).double()
    rnn.load_state_dict({"weight_ih_l0": W_ih.T, "weight_hh_l0": W_hh.T, "bias_ih_l0": b_h,
                         "bias_hh_l0": torch.zeros(5)})
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((4, 9, 3)), rng.standard_normal((4, 2))
    xt = torch.tensor(x, requires_grad=True)
    _, h_n = rnn(xt)
    y_ref = head(h_n[0])
    y_ref.backward(torch.tensor(g))
    y = model(x)
    dx = model.backward(g)
    np.testing.assert_allclose(y, y_ref.detach().numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.W_ih.grad, rnn.weight_ih_l0.grad.numpy().T, rtol=1e-12)
    np.testing.assert_allclose(model.W_hh.grad, rnn.weight_hh_l0.grad.numpy().T, rtol=1e-12)
    np.testing.assert_allclose(model.b_h.grad, rnn.bias_ih_l0.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(model.b_h.grad, rnn.bias_hh_l0.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(model.fc.weight.grad, head.weight.grad.numpy(), rtol=1e-13)


def test_only_the_last_state_reaches_the_head_and_saturation_blocks_the_gradient():
    """Small recurrent weights: the first step still gets a gradient. The seed's N(0, 1)
    weights with large inputs saturate tanh: the gradient of early steps all but vanishes."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 4))
    small = SequenceClassifierRNN(4, 8, 2).double()
    small.load_state_dict({k: v * (0.2 if k.startswith("W") else 1)
                           for k, v in small.state_dict().items()})
    small(x)
    dx = small.backward(np.ones((2, 2)))
    assert np.abs(dx[:, 0]).max() > 1e-3 * np.abs(dx[:, -1]).max()
    saturated = SequenceClassifierRNN(4, 8, 2).double()
    saturated.load_state_dict({k: v * (10 if k.startswith("W") else 1)
                               for k, v in saturated.state_dict().items()})
    saturated(x)
    dx = saturated.backward(np.ones((2, 2)))
    assert np.abs(dx[:, 0]).max() < 1e-6 * np.abs(dx[:, -1]).max()


def test_gradients_accumulate_and_float32_stays_float32():
    model = SequenceClassifierRNN(3, 4, 2)
    x, g = np.ones((2, 3, 3), np.float32), np.ones((2, 2), np.float32)
    model(x)
    dx = model.backward(g)
    assert dx.dtype == model.W_hh.grad.dtype == np.float32
    once = {n: p.grad.copy() for n, p in model.named_parameters()}
    model(x)
    model.backward(g)
    for name, param in model.named_parameters():
        np.testing.assert_allclose(param.grad, 2 * once[name], rtol=1e-6)


@pytest.mark.parametrize("cls, wrap", [(SequenceClassifierRNN, np.zeros),
                                       (torch_twin.SequenceClassifierRNN, torch.zeros)])
def test_bad_inputs_are_one_clear_error(cls, wrap):
    model = cls(6, 12, 3)
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, seq_len, 6\)"):
        model(wrap((7, 6)))
    with pytest.raises(ValueError, match="seq_len = 0"):
        model(wrap((2, 0, 6)))


class WrongRecurrentTranspose(SequenceClassifierRNN):
    """The classic bug: dh_{t-1} = da_t W_hh instead of da_t W_hhᵀ."""

    def backward(self, grad_output):
        W_hh = self.W_hh.data
        self.W_hh.data = W_hh.T.copy()
        try:
            return super().backward(grad_output)
        finally:
            self.W_hh.data = W_hh


def test_verify_accepts_a_copy_and_catches_a_wrong_transpose(tmp_path):
    path = tmp_path / "mine.py"
    shutil.copy(ROOT / "numpy_impl/sequence/rnn_classifier.py", path)
    assert verify("rnn_classifier", load(f"{path}:SequenceClassifierRNN")).passed
    report = verify("rnn_classifier", WrongRecurrentTranspose)
    assert not report.passed
    failing = {d.name for d in report.diffs if not d.passed}
    assert {"grad.param.W_hh", "grad.input.x"} <= failing
    assert "grad.param.fc.weight" not in failing and "out" not in failing
