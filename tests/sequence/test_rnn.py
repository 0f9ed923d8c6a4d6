"""Focused tests of the RNN twins: a hand-computed answer, torch's names and errors, layouts,
the two upstream gradients, accumulation, bidirectional as two one-way RNNs, dropout masks,
a long sequence against nn.RNN, and verify."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from compare.verify import verify
from numpy_impl.sequence import rnn as nprnn
from numpy_impl.sequence.rnn import RNN
from torch_impl.sequence import rnn as thrnn


def _twins(seed: int = 0, **init):
    torch.manual_seed(seed)
    builtin = nn.RNN(**init).double()
    twin = thrnn.RNN(**init).double()
    twin.load_state_dict(builtin.state_dict())
    numpy_rnn = RNN(**init).double()
    numpy_rnn.load_state_dict(builtin.state_dict())
    return numpy_rnn, twin, builtin


def test_one_unit_by_hand():
    """h_t = tanh(0.5 x_t + 0.1 + 0.5 h_{t-1} - 0.2) for x = (1, 2), h0 = 0.3, and the
    gradient of L = h_1 written out by hand."""
    rnn = RNN(1, 1).double()
    rnn.load_state_dict({"weight_ih_l0": [[0.5]], "weight_hh_l0": [[0.5]],
                         "bias_ih_l0": [0.1], "bias_hh_l0": [-0.2]})
    x = np.array([[[1.0]], [[2.0]]])                   # (T=2, B=1, I=1)
    h0 = np.array([[[0.3]]])
    out, h_n = rnn(x, h0)
    h1 = math.tanh(0.5 * 1.0 + 0.1 + 0.5 * 0.3 - 0.2)
    h2 = math.tanh(0.5 * 2.0 + 0.1 + 0.5 * h1 - 0.2)
    np.testing.assert_allclose(out.ravel(), [h1, h2], rtol=1e-15)
    np.testing.assert_allclose(h_n.ravel(), [h2], rtol=1e-15)
    # L = h_n: da_2 = 1 - h2², da_1 = da_2 · 0.5 · (1 - h1²)
    dx, dh0 = rnn.backward((np.zeros_like(out), np.ones_like(h_n)))
    da2 = 1 - h2 * h2
    da1 = da2 * 0.5 * (1 - h1 * h1)
    np.testing.assert_allclose(dx.ravel(), [0.5 * da1, 0.5 * da2], rtol=1e-14)
    np.testing.assert_allclose(dh0.ravel(), [0.5 * da1], rtol=1e-14)
    np.testing.assert_allclose(rnn.weight_ih_l0.grad, [[da1 * 1.0 + da2 * 2.0]], rtol=1e-14)
    np.testing.assert_allclose(rnn.weight_hh_l0.grad, [[da1 * 0.3 + da2 * h1]], rtol=1e-14)
    np.testing.assert_allclose(rnn.bias_hh_l0.grad, [da1 + da2], rtol=1e-14)


@pytest.mark.parametrize("init", [dict(input_size=3, hidden_size=4, num_layers=2),
                                  dict(input_size=3, hidden_size=4, num_layers=3, bias=False)])
def test_state_dict_keys_order_and_shapes_are_torchs(init):
    numpy_rnn, twin, builtin = _twins(**init)
    expected = {k: tuple(v.shape) for k, v in builtin.state_dict().items()}
    assert list(expected)[:2] == ["weight_ih_l0", "weight_hh_l0"]
    assert {k: tuple(v.shape) for k, v in twin.state_dict().items()} == expected
    assert {k: v.shape for k, v in numpy_rnn.state_dict().items()} == expected
    assert list(numpy_rnn.state_dict()) == list(expected) == list(twin.state_dict())


def test_init_is_uniform_in_one_over_sqrt_hidden():
    rnn = RNN(5, 16, num_layers=2)
    bound = 1 / math.sqrt(16)
    values = np.concatenate([p.data.ravel() for p in rnn.parameters()])
    assert values.dtype == np.float32
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.9 * bound        # spread over the whole interval
    assert abs(values.mean()) < 0.02


def test_long_sequence_matches_nn_rnn_forward_and_backward():
    numpy_rnn, _, builtin = _twins(input_size=3, hidden_size=5, num_layers=2,
                                   nonlinearity="relu")
    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((60, 2, 3)), rng.standard_normal((2, 2, 5))
    g_out, g_hn = rng.standard_normal((60, 2, 5)), rng.standard_normal((2, 2, 5))
    out, h_n = numpy_rnn(x, h0)
    dx, dh0 = numpy_rnn.backward((g_out, g_hn))
    xt, h0t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out_t, hn_t = builtin(xt, h0t)
    torch.autograd.backward([out_t, hn_t], [torch.tensor(g_out), torch.tensor(g_hn)])
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h_n, hn_t.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dh0, h0t.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, param in builtin.named_parameters():
        np.testing.assert_allclose(dict(numpy_rnn.named_parameters())[name].grad,
                                   param.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_h_n_is_the_last_output_and_layouts_agree():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2, 3))                 # (T, B, I)
    seq = RNN(3, 5, num_layers=2).double()
    first = RNN(3, 5, num_layers=2, batch_first=True).double()
    first.load_state_dict(seq.state_dict())
    out, h_n = seq(x)
    out_bf, h_n_bf = first(x.swapaxes(0, 1))
    np.testing.assert_array_equal(h_n[-1], out[-1])    # top layer's last state
    np.testing.assert_array_equal(out_bf, out.swapaxes(0, 1))
    np.testing.assert_array_equal(h_n_bf, h_n)         # h_n is (L, B, H) in both layouts
    g = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(first.backward((g.swapaxes(0, 1), None)),
                                  seq.backward((g, None)).swapaxes(0, 1))
    # unbatched (T, I) is batch of one with the batch axis removed
    out_one, hn_one = seq(x[:, :1])
    out_u, hn_u = seq(x[:, 0])
    np.testing.assert_array_equal(out_u, out_one[:, 0])
    np.testing.assert_array_equal(hn_u, hn_one[:, 0])


def test_gradient_of_output_alone_equals_zero_h_n_gradient_and_none_means_zero():
    rnn = RNN(2, 3).double()
    rng = np.random.default_rng(2)
    x, g = rng.standard_normal((3, 2, 2)), rng.standard_normal((3, 2, 3))
    _, h_n = rnn(x)
    alone = rnn.backward(g)
    explicit = rnn.backward((g, np.zeros_like(h_n)))
    none = rnn.backward((g, None))
    np.testing.assert_array_equal(alone, explicit)
    np.testing.assert_array_equal(alone, none)
    # and only h_n: the gradient reaches the input through the last step, non-zero at t = 0
    only_hn = rnn.backward((None, rng.standard_normal(h_n.shape)))
    assert np.abs(only_hn[0]).max() > 0


def test_parameter_gradients_accumulate_and_zero_grad_clears_them():
    rnn = RNN(2, 3, num_layers=2).double()
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((4, 1, 2)), rng.standard_normal((4, 1, 3))
    rnn(x)
    rnn.backward(g)
    once = {n: p.grad.copy() for n, p in rnn.named_parameters()}
    rnn(x)
    rnn.backward(g)
    for name, param in rnn.named_parameters():
        np.testing.assert_allclose(param.grad, 2 * once[name], rtol=1e-15)
    assert all(np.abs(g).max() > 0 for g in once.values())
    rnn.zero_grad()
    assert all(np.all(p.grad == 0) for p in rnn.parameters())


def test_float32_stays_float32():
    rnn = RNN(3, 4)
    out, h_n = rnn(np.ones((2, 1, 3), dtype=np.float32))
    dx = rnn.backward((np.ones_like(out), np.ones_like(h_n)))
    assert out.dtype == h_n.dtype == dx.dtype == rnn.weight_hh_l0.grad.dtype == np.float32


@pytest.mark.parametrize("cls", [RNN, thrnn.RNN, nn.RNN])
def test_bad_arguments_are_rejected_with_torchs_words(cls):
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        cls(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        cls(3, 4, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size must be"):
        cls(3, 0)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        cls(3, 4, dropout=0.5)


@pytest.mark.parametrize("x_shape, h_shape, message", [
    ((5, 2, 4), None, "input.size(-1) must be equal to input_size. Expected 3, got 4"),
    ((5, 2, 3), (2, 3, 4), "Expected hidden size (2, 2, 4), got [2, 3, 4]"),
    ((5, 2, 3), (4,), "For batched 3-D input, hx should also be 3-D but got 1-D tensor"),
    ((0, 2, 3), None, "Expected sequence length to be larger than 0 in RNN"),
])
def test_bad_shapes_raise_torchs_errors_in_all_three(x_shape, h_shape, message):
    numpy_rnn, twin, builtin = _twins(input_size=3, hidden_size=4, num_layers=2)
    x = np.zeros(x_shape)
    h0 = None if h_shape is None else np.zeros(h_shape)
    for module, wrap in ((numpy_rnn, np.asarray), (twin, torch.tensor), (builtin, torch.tensor)):
        with pytest.raises(RuntimeError) as error:
            module(wrap(x), None if h0 is None else wrap(h0))
        assert message in str(error.value)
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        numpy_rnn(np.zeros((1, 2, 2, 3)))


def test_argument_checks_are_shared_functions():
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        nprnn.check_arguments("GRU", 4, 1, 0.0, proj_size=2)
    nprnn.check_arguments("LSTM", 4, 1, 0.0, proj_size=2)        # fine for the LSTM
    assert nprnn.check_input("RNN", np.zeros((2, 3)), None, 3, 1, (4,), batch_first=True) is False


def test_verify_accepts_a_copy_and_catches_a_missing_recurrent_gradient():
    class MyRNN(RNN):
        pass

    assert verify("rnn", MyRNN).passed  # every case: bidirectional and dropout too

    class NoRecurrentGrad(RNN):
        def backward(self, grad_output):
            grads = super().backward(grad_output)
            for layer in range(self.num_layers):
                getattr(self, f"weight_hh_l{layer}").grad[...] = 0.0
            return grads

    report = verify("rnn", NoRecurrentGrad)
    assert not report.passed
    failing = {d.name for d in report.diffs if not d.passed}
    assert "grad.param.weight_hh_l0" in failing
    assert "grad.param.weight_ih_l0" not in failing


def test_bidirectional_is_a_forward_and_a_reverse_rnn_side_by_side():
    """The reverse direction equals a one-way RNN with the _reverse weights run on the
    flipped sequence, flipped back; h_n stacks (forward, reverse) per layer; the input
    gradient is the sum of both runs'."""
    rng = np.random.default_rng(4)
    both = RNN(3, 4, bidirectional=True).double()
    forward, reverse = RNN(3, 4).double(), RNN(3, 4).double()
    state = both.state_dict()
    forward.load_state_dict({k: v for k, v in state.items() if not k.endswith("_reverse")})
    reverse.load_state_dict({k.removesuffix("_reverse"): v for k, v in state.items()
                             if k.endswith("_reverse")})
    x, h0 = rng.standard_normal((6, 2, 3)), rng.standard_normal((2, 2, 4))
    out, h_n = both(x, h0)
    out_f, h_f = forward(x, h0[:1])
    out_r, h_r = reverse(x[::-1], h0[1:])
    np.testing.assert_allclose(out, np.concatenate([out_f, out_r[::-1]], axis=-1), rtol=1e-15)
    np.testing.assert_allclose(h_n, np.concatenate([h_f, h_r]), rtol=1e-15)
    g = rng.standard_normal(out.shape)
    dx, dh0 = both.backward((g, None))
    dx_f, dh0_f = forward.backward((g[..., :4], None))
    dx_r, dh0_r = reverse.backward((g[::-1, :, 4:], None))
    np.testing.assert_allclose(dx, dx_f + dx_r[::-1], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dh0, np.concatenate([dh0_f, dh0_r]), rtol=1e-13)
    np.testing.assert_allclose(both.weight_hh_l0_reverse.grad, reverse.weight_hh_l0.grad,
                               rtol=1e-13)


def test_dropout_between_layers_uses_the_given_mask_in_both_twins():
    init = dict(input_size=3, hidden_size=4, num_layers=2, dropout=0.25, nonlinearity="relu")
    numpy_rnn, twin, _ = _twins(**init)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 2, 3))
    mask = rng.random((1, 5, 2, 4)) < 0.75
    out, _ = numpy_rnn(x, dropout_mask=mask)
    g = rng.standard_normal(out.shape)
    dx = numpy_rnn.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    out_t, _ = twin(xt, dropout_mask=torch.tensor(mask))
    out_t.backward(torch.tensor(g))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-13, atol=1e-15)
    # a dropped unit of layer 0 sends nothing into layer 1: with every mask entry False the
    # top layer sees zeros, as nn.RNN's own kernel does with p = 1
    numpy_p1, _, builtin_p1 = _twins(**(init | dict(dropout=1.0)))
    np.testing.assert_allclose(numpy_p1(x)[0], builtin_p1(torch.tensor(x))[0].detach().numpy(),
                               rtol=1e-14)
