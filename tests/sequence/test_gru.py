"""Focused tests of the GRU twins: a cell by hand with b_hn inside the reset product, torch's
gate order and state dict, T = 200 against nn.GRU, dropout masks, the backward convention, and
verify -- through the API and the command line -- with a broken copy."""
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compare.sequence import gru as compare_gru
from compare.verify import verify
from numpy_impl.sequence.gru import GRU
from torch_impl.sequence import gru as thgru

ROOT = Path(__file__).resolve().parent.parent.parent


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _normwise(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


def _twins(seed: int = 0, **init):
    torch.manual_seed(seed)
    builtin = nn.GRU(**init).double()
    numpy_gru = GRU(**init).double()
    numpy_gru.load_state_dict(builtin.state_dict())
    return numpy_gru, builtin


def test_one_cell_by_hand_with_b_hn_inside_the_reset_product():
    """H = I = 1, one step: n = tanh(w_in x + b_in + r (w_hn h0 + b_hn)), and the gradients
    of L = h_1 with respect to b_in and b_hn, which differ by the factor r."""
    gru = GRU(1, 1).double()
    w_ih, w_hh = [[0.5], [-0.4], [0.9]], [[0.3], [0.6], [-0.7]]           # rows r, z, n
    b_ih, b_hh = [0.1, -0.2, 0.25], [0.05, 0.15, -0.35]
    gru.load_state_dict({"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih,
                         "bias_hh_l0": b_hh})
    x, h0 = 1.2, -0.6
    r = _sigmoid(w_ih[0][0] * x + b_ih[0] + w_hh[0][0] * h0 + b_hh[0])
    z = _sigmoid(w_ih[1][0] * x + b_ih[1] + w_hh[1][0] * h0 + b_hh[1])
    v_n = w_hh[2][0] * h0 + b_hh[2]
    n = math.tanh(w_ih[2][0] * x + b_ih[2] + r * v_n)
    h1 = (1 - z) * n + z * h0
    out, h_n = gru(np.array([[[x]]]), np.array([[[h0]]]))
    np.testing.assert_allclose([out.item(), h_n.item()], [h1, h1], rtol=1e-15)
    dx, dh0 = gru.backward((np.zeros((1, 1, 1)), np.ones((1, 1, 1))))
    da_n = (1 - z) * (1 - n * n)
    da_r = da_n * v_n * r * (1 - r)
    da_z = (h0 - n) * z * (1 - z)
    np.testing.assert_allclose(gru.bias_ih_l0.grad, [da_r, da_z, da_n], rtol=1e-14)
    np.testing.assert_allclose(gru.bias_hh_l0.grad, [da_r, da_z, da_n * r], rtol=1e-14)
    np.testing.assert_allclose(dh0.item(), z + da_r * w_hh[0][0] + da_z * w_hh[1][0]
                               + da_n * r * w_hh[2][0], rtol=1e-14)
    np.testing.assert_allclose(dx.item(), da_r * w_ih[0][0] + da_z * w_ih[1][0]
                               + da_n * w_ih[2][0], rtol=1e-14)


def test_gate_order_is_r_z_n_like_nn_gru():
    """Zero weights; the update gate fully closed (z = 0) makes h_t = n = tanh(b_in + r b_hn)
    with r = σ(b_r): every block of the bias rows is read from its own place."""
    state = {"weight_ih_l0": np.zeros((6, 3)), "weight_hh_l0": np.zeros((6, 2)),
             "bias_ih_l0": np.r_[[0.4] * 2, [-60.0] * 2, [0.2] * 2],
             "bias_hh_l0": np.r_[[0.0] * 2, [0.0] * 2, [0.5] * 2]}
    gru = GRU(3, 2).double()
    gru.load_state_dict(state)
    builtin = nn.GRU(3, 2).double()
    builtin.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    x = np.random.default_rng(0).standard_normal((3, 1, 3))
    out, _ = gru(x)
    np.testing.assert_allclose(out, math.tanh(0.2 + _sigmoid(0.4) * 0.5), rtol=1e-15)
    np.testing.assert_allclose(out, builtin(torch.tensor(x))[0].detach().numpy(), rtol=1e-15)


@pytest.mark.parametrize("init", [dict(input_size=3, hidden_size=4, num_layers=2,
                                       bidirectional=True),
                                  dict(input_size=2, hidden_size=3, num_layers=3, bias=False)])
def test_a_torch_state_dict_loads_unchanged_and_keys_are_torchs(init):
    torch.manual_seed(0)
    builtin = nn.GRU(**init)
    numpy_gru = GRU(**init)
    numpy_gru.load_state_dict(builtin.state_dict())
    expected = [(k, tuple(v.shape)) for k, v in builtin.state_dict().items()]
    assert [(k, v.shape) for k, v in numpy_gru.state_dict().items()] == expected
    assert [(k, tuple(v.shape)) for k, v in thgru.GRU(**init).state_dict().items()] == expected
    for key, value in builtin.state_dict().items():
        np.testing.assert_array_equal(numpy_gru.state_dict()[key], value.numpy())


def test_long_sequence_t200_agrees_with_nn_gru_in_float64():
    numpy_gru, builtin = _twins(input_size=4, hidden_size=8, num_layers=2, bidirectional=True,
                                batch_first=True)
    rng = np.random.default_rng(1)
    x, h0 = rng.standard_normal((3, 200, 4)), rng.standard_normal((4, 3, 8))
    out, h_n = numpy_gru(x, h0)
    g_out, g_hn = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    dx, dh0 = numpy_gru.backward((g_out, g_hn))
    xt, h0t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out_t, hn_t = builtin(xt, h0t)
    torch.autograd.backward([out_t, hn_t], [torch.tensor(g_out), torch.tensor(g_hn)])
    errors = {"out": _normwise(out, out_t.detach()), "h_n": _normwise(h_n, hn_t.detach()),
              "dx": _normwise(dx, xt.grad), "dh0": _normwise(dh0, h0t.grad)}
    mine = dict(numpy_gru.named_parameters())
    errors |= {n: _normwise(mine[n].grad, p.grad) for n, p in builtin.named_parameters()}
    assert max(errors.values()) < 1e-10, errors


def test_dropout_mask_replayed_in_both_twins_and_their_gradients_agree():
    init = dict(input_size=3, hidden_size=4, num_layers=2, dropout=0.5, batch_first=True)
    numpy_gru, _ = _twins(**init)
    twin = thgru.GRU(**init).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in numpy_gru.state_dict().items()})
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 3))
    mask = rng.random((1, 2, 5, 4)) < 0.5              # (L-1, B, T, H): batch_first output
    out, h_n = numpy_gru(x, dropout_mask=mask)
    g = rng.standard_normal(out.shape)
    dx = numpy_gru.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    out_t, _ = twin(xt, dropout_mask=torch.tensor(mask))
    out_t.backward(torch.tensor(g))
    assert _normwise(out, out_t.detach()) < 1e-14
    assert _normwise(dx, xt.grad) < 1e-13
    assert _normwise(numpy_gru.weight_ih_l1.grad, twin.weight_ih_l1.grad) < 1e-13


def test_backward_returns_dh0_only_when_h0_was_given():
    gru = GRU(2, 3).double()
    rng = np.random.default_rng(3)
    x, h0 = rng.standard_normal((4, 2, 2)), rng.standard_normal((1, 2, 3))
    out, h_n = gru(x, h0)
    dx, dh0 = gru.backward((rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)))
    assert dx.shape == x.shape and dh0.shape == h0.shape
    gru(x)
    assert isinstance(gru.backward((None, np.ones(h_n.shape))), np.ndarray)


def test_float32_stays_float32():
    gru = GRU(3, 4, bidirectional=True)
    out, h_n = gru(np.ones((2, 1, 3), dtype=np.float32))
    dx = gru.backward((np.ones_like(out), np.ones_like(h_n)))
    assert {out.dtype, h_n.dtype, dx.dtype, gru.bias_hh_l0_reverse.grad.dtype} == \
        {np.dtype(np.float32)}


@pytest.mark.parametrize("cls", [GRU, thgru.GRU])
def test_proj_size_is_not_an_argument_of_the_gru(cls):
    with pytest.raises(TypeError, match="proj_size"):
        cls(3, 4, proj_size=2)


_BROKEN_SOURCE = '''
import numpy as np
from numpy_impl.sequence.gru import GRU


class BrokenGRU(GRU):
    """dL/db_hn not scaled by r: as if b_hn sat outside the reset product."""

    def cell_backward(self, dhs, dlast, cache):
        dx, dstates, grads = super().cell_backward(dhs, dlast, cache)
        if grads["bias_hh"] is not None:
            hidden = grads["bias_hh"].shape[0] // 3
            grads["bias_hh"][2 * hidden:] = grads["bias_ih"][2 * hidden:]
        return dx, dstates, grads
'''


def test_verify_catches_b_hn_outside_the_reset_product_through_the_cli(tmp_path):
    path = tmp_path / "broken_gru.py"
    path.write_text(_BROKEN_SOURCE)
    result = subprocess.run([sys.executable, "-m", "compare", "verify", "gru",
                             f"{path}:BrokenGRU"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "grad.param.bias_hh_l0" in result.stdout
    failing = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert failing and all("bias_hh" in line for line in failing)


def test_verify_accepts_a_copy_of_the_gru():
    class MyGRU(GRU):
        pass

    some = dataclasses.replace(compare_gru.CONCEPT, cases=[
        compare_gru.CONCEPT.case(n) for n in ("h0-given", "bidirectional-two-layers",
                                              "dropout", "unbatched")])
    assert verify(some, MyGRU).passed
