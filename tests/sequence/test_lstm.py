"""Focused tests of the LSTM twins: a cell by hand, torch's gate order and state dict, proj_size,
dropout masks, layouts, the backward convention, T = 200 against nn.LSTM, the char-level
training parity, and verify with a broken copy of each twin."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from compare.concept import Trial
from compare.sequence import lstm as compare_lstm
from compare.verify import verify
from numpy_impl import random
from numpy_impl.sequence.lstm import LSTM
from torch_impl.sequence import lstm as thlstm


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _normwise(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


def _twins(seed: int = 0, **init):
    torch.manual_seed(seed)
    builtin = nn.LSTM(**init).double()
    numpy_lstm = LSTM(**init).double()
    numpy_lstm.load_state_dict(builtin.state_dict())
    return numpy_lstm, builtin


def _against_builtin(numpy_lstm, builtin, x, hx, rng):
    """Forward and backward of both on the same data and upstream gradients; the normwise
    errors of every output and gradient by name."""
    out, (h_n, c_n) = numpy_lstm(x, hx)
    g = [rng.standard_normal(a.shape) for a in (out, h_n, c_n)]
    grads = numpy_lstm.backward((g[0], (g[1], g[2])))
    xt = torch.tensor(x, requires_grad=True)
    hxt = tuple(torch.tensor(s, requires_grad=True) for s in hx)
    out_t, (hn_t, cn_t) = builtin(xt, hxt)
    torch.autograd.backward([out_t, hn_t, cn_t], [torch.tensor(a) for a in g])
    errors = {"out": _normwise(out, out_t.detach()), "h_n": _normwise(h_n, hn_t.detach()),
              "c_n": _normwise(c_n, cn_t.detach()), "dx": _normwise(grads[0], xt.grad),
              "dh0": _normwise(grads[1][0], hxt[0].grad),
              "dc0": _normwise(grads[1][1], hxt[1].grad)}
    mine = dict(numpy_lstm.named_parameters())
    for name, param in builtin.named_parameters():
        errors[name] = _normwise(mine[name].grad, param.grad)
    return errors


def test_one_cell_by_hand():
    """H = I = 1, one step: the gates, c_1, h_1 and dL/dc0, dL/dh0, dL/dx for L = h_1."""
    lstm = LSTM(1, 1).double()
    w_ih, w_hh = [[0.5], [-0.3], [0.8], [0.2]], [[0.1], [0.4], [-0.6], [0.7]]  # rows i, f, g, o
    b_ih, b_hh = [0.1, 0.2, -0.1, 0.3], [0.0, 0.1, 0.05, -0.2]
    lstm.load_state_dict({"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih,
                          "bias_hh_l0": b_hh})
    x, h0, c0 = 1.5, 0.4, -0.7
    a = [w_ih[k][0] * x + b_ih[k] + w_hh[k][0] * h0 + b_hh[k] for k in range(4)]
    i, f, g, o = _sigmoid(a[0]), _sigmoid(a[1]), math.tanh(a[2]), _sigmoid(a[3])
    c1 = f * c0 + i * g
    h1 = o * math.tanh(c1)
    out, (h_n, c_n) = lstm(np.array([[[x]]]), (np.array([[[h0]]]), np.array([[[c0]]])))
    np.testing.assert_allclose([out.item(), h_n.item(), c_n.item()], [h1, h1, c1], rtol=1e-15)
    dx, (dh0, dc0) = lstm.backward((np.zeros((1, 1, 1)), (np.ones((1, 1, 1)),
                                                          np.zeros((1, 1, 1)))))
    dc1 = o * (1 - math.tanh(c1) ** 2)                 # dL/dc_1 through h_1 = o tanh(c_1)
    da = [dc1 * g * i * (1 - i), dc1 * c0 * f * (1 - f), dc1 * i * (1 - g * g),
          math.tanh(c1) * o * (1 - o)]
    np.testing.assert_allclose(dc0.item(), dc1 * f, rtol=1e-14)
    np.testing.assert_allclose(dh0.item(), sum(da[k] * w_hh[k][0] for k in range(4)),
                               rtol=1e-14)
    np.testing.assert_allclose(dx.item(), sum(da[k] * w_ih[k][0] for k in range(4)), rtol=1e-14)
    np.testing.assert_allclose(lstm.bias_hh_l0.grad, da, rtol=1e-14)


def test_gate_order_is_i_f_g_o_like_nn_lstm():
    """Zero weights; biases open the forget gate fully and close the input gate: c_t = c0,
    h_t = σ(b_o) tanh(c0). Swapping any two gate blocks would change the answer."""
    state = {"weight_ih_l0": np.zeros((8, 3)), "weight_hh_l0": np.zeros((8, 2)),
             "bias_ih_l0": np.r_[[-50.0] * 2, [50.0] * 2, [0.3] * 2, [0.8] * 2],
             "bias_hh_l0": np.zeros(8)}
    lstm = LSTM(3, 2).double()
    lstm.load_state_dict(state)
    builtin = nn.LSTM(3, 2).double()
    builtin.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    x = np.random.default_rng(0).standard_normal((4, 1, 3))
    c0 = np.array([[[0.5, -1.0]]])
    out, (h_n, c_n) = lstm(x, (np.zeros((1, 1, 2)), c0))
    np.testing.assert_allclose(c_n, c0, atol=1e-20)
    np.testing.assert_allclose(out[:, 0], np.broadcast_to(_sigmoid(0.8) * np.tanh(c0[0]),
                                                          (4, 2)), rtol=1e-15)
    out_t, _ = builtin(torch.tensor(x), (torch.zeros(1, 1, 2, dtype=torch.float64),
                                         torch.tensor(c0)))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-15)


@pytest.mark.parametrize("init", [
    dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True),
    dict(input_size=3, hidden_size=5, num_layers=2, proj_size=2, bidirectional=True),
    dict(input_size=3, hidden_size=4, num_layers=3, bias=False),
])
def test_a_torch_state_dict_loads_unchanged_and_keys_are_torchs(init):
    torch.manual_seed(0)
    builtin, twin = nn.LSTM(**init), thlstm.LSTM(**init)
    numpy_lstm = LSTM(**init)
    numpy_lstm.load_state_dict(builtin.state_dict())   # torch tensors, as they come
    expected = [(k, tuple(v.shape)) for k, v in builtin.state_dict().items()]
    assert [(k, v.shape) for k, v in numpy_lstm.state_dict().items()] == expected
    assert [(k, tuple(v.shape)) for k, v in twin.state_dict().items()] == expected
    for key, value in builtin.state_dict().items():
        np.testing.assert_array_equal(numpy_lstm.state_dict()[key], value.numpy())
    twin.load_state_dict(builtin.state_dict())         # and the other way round
    builtin.load_state_dict({k: torch.from_numpy(v) for k, v in numpy_lstm.state_dict().items()})


def test_proj_size_shapes_and_gradients_match_nn_lstm():
    numpy_lstm, builtin = _twins(input_size=3, hidden_size=6, proj_size=2, num_layers=2,
                                 bidirectional=True)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 3))
    hx = (rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 6)))
    out, (h_n, c_n) = numpy_lstm(x, hx)
    assert out.shape == (5, 3, 4) and h_n.shape == (4, 3, 2) and c_n.shape == (4, 3, 6)
    errors = _against_builtin(numpy_lstm, builtin, x, hx, rng)
    assert max(errors.values()) < 1e-12, errors
    assert np.abs(numpy_lstm.weight_hr_l1_reverse.grad).max() > 1e-3


def test_long_sequence_t200_agrees_with_nn_lstm_in_float64():
    numpy_lstm, builtin = _twins(input_size=4, hidden_size=8, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 3, 4))
    hx = (rng.standard_normal((4, 3, 8)), rng.standard_normal((4, 3, 8)))
    errors = _against_builtin(numpy_lstm, builtin, x, hx, rng)
    assert max(errors.values()) < 1e-10, errors        # the float64 default, normwise


def test_dropout_mask_is_replayed_and_p1_and_eval_match_nn_lstm():
    init = dict(input_size=3, hidden_size=4, num_layers=3, dropout=0.5)
    numpy_lstm, _ = _twins(**init)
    torch.manual_seed(0)
    twin = thlstm.LSTM(**init).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in numpy_lstm.state_dict().items()})
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 2, 3))
    mask = rng.random((2, 6, 2, 4)) < 0.5              # (L-1, T, B, H), like the output
    out, _ = numpy_lstm(x, dropout_mask=mask)
    out_t, _ = twin(torch.tensor(x), dropout_mask=torch.tensor(mask))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-14, atol=1e-15)
    other, _ = numpy_lstm(x, dropout_mask=~mask)       # the mask matters
    assert np.abs(other - out).max() > 1e-3
    # p = 1 drops every unit between layers: deterministic, so nn.LSTM's own kernel agrees
    numpy_p1, builtin_p1 = _twins(input_size=3, hidden_size=4, num_layers=2, dropout=1.0)
    np.testing.assert_allclose(numpy_p1(x)[0], builtin_p1(torch.tensor(x))[0].detach().numpy(),
                               rtol=1e-14)
    # eval: no dropout at all, as with dropout=0
    numpy_lstm.eval()
    plain = LSTM(**(init | dict(dropout=0.0))).double()
    plain.load_state_dict(numpy_lstm.state_dict())
    np.testing.assert_array_equal(numpy_lstm(x)[0], plain(x)[0])


def test_own_masks_drop_a_fraction_p_between_layers():
    """Without a mask the NumPy twin draws its own from numpy_impl.random: over the
    T·B·H = 4,000 units between the layers, the kept fraction is 1 - p within 0.02 (the
    binomial standard deviation is 0.007; the generator is seeded, so this is one fixed draw)."""
    random.manual_seed(0)
    lstm = LSTM(2, 50, num_layers=2, dropout=0.3).double()
    x = np.random.default_rng(4).standard_normal((40, 2, 2))
    lstm(x)
    kept = lstm._drop_caches[0][0]                     # (T, B, H) the mask the layer drew
    assert kept.shape == (40, 2, 50) and kept.dtype == bool
    assert abs(kept.mean() - 0.7) < 0.02


def test_layouts_unbatched_and_batch_first_agree():
    rng = np.random.default_rng(5)
    seq = LSTM(3, 4, num_layers=2, bidirectional=True).double()
    first = LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    first.load_state_dict(seq.state_dict())
    x = rng.standard_normal((5, 2, 3))
    out, (h_n, c_n) = seq(x)
    out_bf, (h_bf, c_bf) = first(x.swapaxes(0, 1))
    np.testing.assert_array_equal(out_bf, out.swapaxes(0, 1))
    np.testing.assert_array_equal(h_bf, h_n)           # states are (L·D, B, H) in both layouts
    np.testing.assert_array_equal(h_n[-2], out[-1, :, :4])   # top forward: last step
    np.testing.assert_array_equal(h_n[-1], out[0, :, 4:])    # top reverse: ends at t = 0
    out_u, (h_u, c_u) = seq(x[:, 0])                   # unbatched (T, I)
    out_1, (h_1, c_1) = seq(x[:, :1])
    np.testing.assert_array_equal(out_u, out_1[:, 0])
    np.testing.assert_array_equal(c_u, c_1[:, 0])


def test_backward_convention_and_accumulation():
    lstm = LSTM(2, 3, num_layers=2).double()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 2, 2))
    hx = (rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 2, 3)))
    out, (h_n, c_n) = lstm(x, hx)
    g = rng.standard_normal(out.shape)
    dx, (dh0, dc0) = lstm.backward((g, (None, None)))  # with hx: (dx, (dh0, dc0))
    assert dx.shape == x.shape and dh0.shape == dc0.shape == (2, 2, 3)
    once = {n: p.grad.copy() for n, p in lstm.named_parameters()}
    lstm(x, hx)
    dx_tuple, _ = lstm.backward((g, None))             # None means zero
    np.testing.assert_array_equal(dx_tuple, dx)
    for name, param in lstm.named_parameters():        # accumulated, as autograd does
        np.testing.assert_allclose(param.grad, 2 * once[name], rtol=1e-15)
    lstm(x)                                            # without hx: dx alone
    assert isinstance(lstm.backward(g), np.ndarray)
    only_cn = lstm.backward((None, (None, np.ones_like(c_n))))
    assert np.abs(only_cn[0]).max() > 0                # c_n alone reaches the first step


def test_float32_stays_float32():
    lstm = LSTM(3, 4, proj_size=2)
    out, (h_n, c_n) = lstm(np.ones((2, 1, 3), dtype=np.float32))
    dx = lstm.backward((np.ones_like(out), (np.ones_like(h_n), np.ones_like(c_n))))
    assert {out.dtype, h_n.dtype, c_n.dtype, dx.dtype, lstm.weight_hr_l0.grad.dtype} == \
        {np.dtype(np.float32)}


@pytest.mark.parametrize("cls", [LSTM, thlstm.LSTM, nn.LSTM])
def test_bad_arguments_and_states_raise_torchs_errors(cls):
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        cls(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="proj_size should be a positive integer or zero"):
        cls(3, 4, proj_size=-1)
    module = cls(3, 4, num_layers=2)
    wrap = np.zeros if cls is LSTM else torch.zeros
    x = wrap((5, 2, 3))
    with pytest.raises(RuntimeError,
                       match=r"Expected hidden\[0\] size \(2, 2, 4\), got \[2, 3, 4\]"):
        module(x, (wrap((2, 3, 4)), wrap((2, 2, 4))))
    with pytest.raises(RuntimeError,
                       match=r"Expected hidden\[1\] size \(2, 2, 4\), got \[2, 2, 5\]"):
        module(x, (wrap((2, 2, 4)), wrap((2, 2, 5))))
    with pytest.raises(RuntimeError, match=r"hx and cx should also be 3-D but got \(2-D, 3-D\)"):
        module(x, (wrap((2, 4)), wrap((2, 2, 4))))


def test_a_dropout_mask_of_the_wrong_shape_is_refused():
    lstm = LSTM(3, 4, num_layers=2, dropout=0.5, batch_first=True)
    with pytest.raises(ValueError, match=r"dropout_mask must have shape \(1, 2, 5, 4\)"):
        lstm(np.zeros((2, 5, 3), dtype=np.float32), dropout_mask=np.ones((1, 5, 2, 4), bool))


def test_char_lstm_training_parity_in_float64():
    """30 Adam steps of the char-level LSTM on the names corpus: the loss at every step and
    every parameter at the end agree within 1e-9 (the issue's bound), and the model learns."""
    outcome = compare_lstm.run(compare_lstm.CONCEPT.case("train-adam"),
                               Trial("float64", builtin=True, fd=False))
    steps = compare_lstm.TRAIN_STEPS
    losses = {side: np.array([getattr(outcome, side)[f"step{k}/loss"]
                              for k in range(1, steps + 1)]) for side in ("numpy", "torch")}
    assert _normwise(losses["numpy"], losses["torch"]) < 1e-9
    assert losses["torch"][0] > 3.0 and losses["torch"][-1] < losses["torch"][0] - 0.5
    params = [n for n in outcome.torch if n.startswith(f"step{steps}/param.")]
    assert len(params) == 7                            # embedding, 4 LSTM tensors, head w, b
    for name in params:
        assert _normwise(outcome.numpy[name], outcome.torch[name]) < 1e-9, name
        assert _normwise(outcome.builtin[name], outcome.torch[name]) < 1e-9, name


def test_training_plot_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(compare_lstm, "PLOT_STEPS", 5)
    paths = compare_lstm.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["lstm_training_float64.png", "lstm_training_float32.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_verify_accepts_a_copy_and_catches_a_broken_forget_gate_gradient():
    class MyLSTM(LSTM):
        pass

    some = dataclasses.replace(compare_lstm.CONCEPT, cases=[
        compare_lstm.CONCEPT.case(n) for n in ("h0-c0-given", "bidirectional", "dropout",
                                               "proj-size", "unbatched")])
    assert verify(some, MyLSTM).passed

    class NoForgetThroughCell(LSTM):
        """dc_{t-1} = dc_t (forgets to multiply by f): a classic BPTT bug."""

        def cell_backward(self, dhs, dlast, cache):
            gates = cache[3]
            saved = gates.copy()
            hidden = gates.shape[-1] // 4
            gates[..., hidden:2 * hidden] = 1.0        # f = 1 in backward only
            try:
                return super().cell_backward(dhs, dlast, cache)
            finally:
                gates[...] = saved

    report = verify(some, NoForgetThroughCell)
    assert not report.passed
    failing = {d.name for d in report.diffs if not d.passed}
    assert "grad.input.c0" in failing and "grad.param.weight_hh_l0" in failing
    assert "out.0" not in failing                      # the forward is right


def test_verify_catches_a_torch_lstm_with_gates_in_the_wrong_order():
    class SwappedGates(thlstm.LSTM):
        """Reads the rows as i, g, f, o: the layout of some other libraries."""

        def cell(self, x, states0, weights):
            def swap(w):
                if w is None:
                    return None
                i, f, g, o = w.chunk(4, dim=0)
                return torch.cat([i, g, f, o])
            swapped = {k: swap(v) if k != "weight_hr" else v for k, v in weights.items()}
            return super().cell(x, states0, swapped)

    report = verify("lstm:LSTM", SwappedGates)
    assert not report.passed
    assert "out.0" in {d.name for d in report.diffs if not d.passed}


def test_train_demo_on_a_users_file_and_bad_input(tmp_path, capsys):
    data = tmp_path / "words.txt"
    data.write_text("\n".join(["anna", "bob", "carla", "dina", "emil", "fritz", "greta",
                               "hanne", "ida", "jonas"] * 4))
    assert compare_lstm.main(["--train", "--data", str(data), "--steps", "3",
                              "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "vocabulary 19" in printed and "dev loss" in printed
    assert (tmp_path / "lstm_train_loss.png").stat().st_size > 10_000
    assert compare_lstm.main(["--train", "--data", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert compare_lstm.main(["--train", "--steps", "0"]) == 2
