"""Focused tests for MultiheadAttention: state dicts both ways, every mask combination torch
accepts in both layouts against nn.MultiheadAttention, nn.MultiheadAttention's own dropout
mask replayed, the NaN of an all-masked query with need_weights, causality, refusals, and
verify with a broken copy of the twin."""
from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compare.concept import Trial
from compare.runner import compare_outcome
from compare.transformer import multihead_attention as cmp
from compare.verify import load, verify
from numpy_impl.transformer.multihead_attention import MultiheadAttention as NumpyMHA
from torch_impl.transformer.multihead_attention import MultiheadAttention as TorchMHA

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("bias", [True, False])
def test_state_dicts_move_unchanged_both_ways(bias):
    torch.manual_seed(0)
    builtin = nn.MultiheadAttention(8, 2, bias=bias).double()
    mine = NumpyMHA(8, 2, bias=bias).double()
    mine.load_state_dict(builtin.state_dict())
    assert list(mine.state_dict()) == list(builtin.state_dict()) == list(TorchMHA(8, 2, bias=bias)
                                                                         .state_dict())
    back = nn.MultiheadAttention(8, 2, bias=bias).double()
    back.load_state_dict({k: torch.from_numpy(v) for k, v in mine.state_dict().items()})
    x = torch.randn(3, 2, 8, dtype=torch.float64)
    np.testing.assert_array_equal(back(x, x, x)[0].detach().numpy(),
                                  builtin(x, x, x)[0].detach().numpy())


def test_initialization_is_torchs():
    """Xavier-uniform in_proj_weight with bound sqrt(6 / (3E + E)), zero biases."""
    mha = NumpyMHA(64, 4)
    bound = np.sqrt(6 / (4 * 64))
    w = mha.in_proj_weight.data
    assert w.shape == (192, 64) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.03 * bound
    assert np.all(mha.in_proj_bias.data == 0) and np.all(mha.out_proj.bias.data == 0)


KEY_PADDING = {"none": None, "bool": cmp.bool_mask(cmp.N, cmp.S),
               "float": cmp.float_mask(cmp.N, cmp.S)}
ATTN = {"none": None, "bool-2d": cmp.bool_mask(cmp.L, cmp.S),
        "float-2d": cmp.float_mask(cmp.L, cmp.S),
        "bool-3d": cmp.bool_mask(cmp.N * 2, cmp.L, cmp.S),
        "float-3d": cmp.float_mask(cmp.N * 2, cmp.L, cmp.S)}
COMBINATIONS = list(itertools.product(KEY_PADDING, ATTN, [False, True], [True, False]))


def _agrees(case, dtype="float64", fd=False):
    outcome = cmp.run(case, Trial(dtype=dtype, seed=3, fd=fd))
    diffs = compare_outcome(outcome, case, dtype)
    assert diffs and all(d.passed for d in diffs), [(d.check, d.name, d.max_rel)
                                                    for d in diffs if not d.passed]
    return outcome


@pytest.mark.parametrize("padding, attn, batch_first, need_weights", COMBINATIONS)
def test_every_mask_combination_against_the_builtin(padding, attn, batch_first, need_weights):
    masks = {k: v for k, v in (("key_padding_mask", KEY_PADDING[padding]),
                               ("attn_mask", ATTN[attn])) if v is not None}
    case = cmp._case("combo", cross=True, batch_first=batch_first, masks=masks,
                     forward=dict(need_weights=need_weights, average_attn_weights=False))
    outcome = _agrees(case)
    assert "out" in outcome.builtin and ("weights" in outcome.builtin) == need_weights


UNBATCHED_PADDING = {"none": None, "bool": cmp.bool_mask(cmp.S), "float": cmp.float_mask(cmp.S)}
UNBATCHED_ATTN = {"none": None, "bool-2d": cmp.bool_mask(cmp.L, cmp.S),
                  "float-3d": cmp.float_mask(2, cmp.L, cmp.S)}   # (H, L, S) without a batch


@pytest.mark.parametrize("padding, attn, average", list(itertools.product(
    UNBATCHED_PADDING, UNBATCHED_ATTN, [True, False])))
def test_unbatched_mask_combinations_against_the_builtin(padding, attn, average):
    masks = {k: v for k, v in (("key_padding_mask", UNBATCHED_PADDING[padding]),
                               ("attn_mask", UNBATCHED_ATTN[attn])) if v is not None}
    case = cmp._case("unbatched-combo", cross=True, unbatched=True, masks=masks,
                     forward=dict(average_attn_weights=average))
    outcome = _agrees(case)
    assert outcome.builtin["weights"].shape == ((cmp.L, cmp.S) if average
                                                else (2, cmp.L, cmp.S))


@pytest.mark.parametrize("padding", [None, "bool"])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
def test_the_is_causal_hint_against_the_builtin(padding, need_weights, batch_first):
    masks = dict(attn_mask=cmp.causal_bool(4))
    if padding:
        masks["key_padding_mask"] = cmp.bool_mask(cmp.N, 4)
    case = cmp._case("causal", length=4, batch_first=batch_first, masks=masks,
                     forward=dict(is_causal=True, need_weights=need_weights))
    _agrees(case)


@pytest.mark.parametrize("need_weights", [True, False])
def test_builtin_dropout_mask_replayed_through_both_twins(need_weights):
    """nn.MultiheadAttention draws its own dropout mask; with need_weights it returns the
    weights after dropout, whose zeros are that mask (no weight is 0 without a mask). Replay it
    through both twins: same output and gradients as the built-in, with and without weights
    (a replay with need_weights=False reuses the same seed, so the same mask)."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((2, 4, 8))).requires_grad_()
    g = torch.from_numpy(rng.standard_normal((2, 4, 8)))
    torch.manual_seed(1)
    builtin = nn.MultiheadAttention(8, 2, dropout=0.3, batch_first=True).double()
    state = builtin.state_dict()
    torch.manual_seed(2)
    _, weights = builtin(x, x, x, need_weights=True, average_attn_weights=False)
    keep = (weights != 0).detach().numpy()
    assert 0 < keep.mean() < 1
    torch.manual_seed(2)
    out, _ = builtin(x, x, x, need_weights=need_weights, average_attn_weights=False)
    out.backward(g)

    twin = TorchMHA(8, 2, dropout=0.3, batch_first=True).double()
    twin.load_state_dict(state)
    xt = x.detach().clone().requires_grad_()
    out_t, _ = twin(xt, xt, xt, need_weights=need_weights, dropout_mask=torch.from_numpy(keep))
    out_t.backward(g)
    np.testing.assert_allclose(out_t.detach().numpy(), out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), x.grad.numpy(), rtol=1e-12)

    mine = NumpyMHA(8, 2, dropout=0.3, batch_first=True).double()
    mine.load_state_dict(state)
    xn = x.detach().numpy()
    out_n, _ = mine(xn, xn, xn, need_weights=need_weights, dropout_mask=keep)
    dx = sum(mine.backward(g.numpy()))
    np.testing.assert_allclose(out_n, out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, x.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mine.in_proj_weight.grad, builtin.in_proj_weight.grad.numpy(),
                               rtol=1e-12, atol=1e-14)


def test_an_all_masked_query_is_nan_with_weights_and_zero_without():
    """Pins torch 2.13.0: nn.MultiheadAttention's need_weights path is a plain softmax (NaN for
    a query with no visible key, and NaN in every gradient); its need_weights=False path is
    SDPA (zeros, finite gradients). Both twins too."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 8))
    mask = np.zeros((3, 3), dtype=bool)
    mask[1] = True                                                      # query 1 sees nothing
    torch.manual_seed(0)
    builtin = nn.MultiheadAttention(8, 2).double()
    mine = NumpyMHA(8, 2).double()
    mine.load_state_dict(builtin.state_dict())
    twin = TorchMHA(8, 2).double()
    twin.load_state_dict(builtin.state_dict())
    xt, mt = torch.from_numpy(x), torch.from_numpy(mask)
    for need_weights in (True, False):
        results = [builtin(xt, xt, xt, attn_mask=mt, need_weights=need_weights),
                   twin(xt, xt, xt, attn_mask=mt, need_weights=need_weights),
                   mine(x, x, x, attn_mask=mask, need_weights=need_weights)]
        for out, weights in results:
            out = np.asarray(out.detach() if hasattr(out, "detach") else out)
            assert np.isnan(out[1]).all() == need_weights
            assert not np.isnan(out[[0, 2]]).any()
            if need_weights:
                weights = np.asarray(weights.detach() if hasattr(weights, "detach") else weights)
                assert np.isnan(weights[:, 1]).all() and not np.isnan(weights[:, [0, 2]]).any()
            else:
                assert weights is None
        np.testing.assert_allclose(results[2][0][[0, 2]],
                                   results[0][0].detach().numpy()[[0, 2]], rtol=1e-12)
        # the backward: with weights, NaN reaches every gradient (all keys and values read
        # the dead row's weights); without, the dead query just gets none
        g = rng.standard_normal((3, 2, 8))
        grads = []
        for module in (builtin, twin):
            module.zero_grad()
            xg = xt.clone().requires_grad_()
            module(xg, xg, xg, attn_mask=mt, need_weights=need_weights)[0].backward(
                torch.from_numpy(g))
            grads.append((xg.grad.numpy(), module.in_proj_weight.grad.numpy()))
        mine.zero_grad()
        mine(x, x, x, attn_mask=mask, need_weights=need_weights)
        grads.append((sum(mine.backward(g)), mine.in_proj_weight.grad))
        for dx, dweight in grads:
            assert np.isnan(dx).all() == need_weights and np.isnan(dweight).all() == need_weights
            if not need_weights:
                np.testing.assert_allclose(dx, grads[0][0], rtol=1e-12, atol=1e-14)


def test_causal_mask_makes_output_at_t_independent_of_later_inputs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 8))
    mask = np.triu(np.ones((6, 6), dtype=bool), k=1)
    torch.manual_seed(0)
    twin = TorchMHA(8, 2, batch_first=True).double()
    mine = NumpyMHA(8, 2, batch_first=True).double()
    mine.load_state_dict(twin.state_dict())
    for t in (0, 3):
        y = x.copy()
        y[:, t + 1:] += rng.standard_normal(y[:, t + 1:].shape)
        a, _ = mine(x, x, x, attn_mask=mask, is_causal=True)
        b, _ = mine(y, y, y, attn_mask=mask, is_causal=True)
        assert np.array_equal(a[:, :t + 1], b[:, :t + 1]) and not np.allclose(a[:, t + 1],
                                                                               b[:, t + 1])
        kw = dict(attn_mask=torch.from_numpy(mask), is_causal=True, need_weights=False)
        at = twin(*(torch.from_numpy(x),) * 3, **kw)[0]
        bt = twin(*(torch.from_numpy(y),) * 3, **kw)[0]
        assert torch.equal(at[:, :t + 1], bt[:, :t + 1])


@pytest.mark.parametrize("cls", [NumpyMHA, TorchMHA])
@pytest.mark.parametrize("options, words", [(dict(add_bias_kv=True), "add_bias_kv"),
                                            (dict(add_zero_attn=True), "add_zero_attn"),
                                            (dict(kdim=4), "kdim and vdim"),
                                            (dict(vdim=4), "kdim and vdim")])
def test_unsupported_options_are_refused_clearly(cls, options, words):
    with pytest.raises(ValueError, match=words):
        cls(8, 2, **options)


def test_is_causal_needs_attn_mask_as_in_torch():
    x = np.zeros((3, 2, 8))
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        NumpyMHA(8, 2)(x, x, x, is_causal=True)


def test_verify_a_broken_copy_from_a_file_names_the_tensor(tmp_path):
    """The twin's file with the head merge's gradient taken from the wrong layout: verify
    must fail on the in-projection and input gradients, not on the forward."""
    source = (ROOT / "numpy_impl" / "transformer" / "multihead_attention.py").read_text()
    right = "dcontext = dmerged.reshape(L, N, H, D).transpose(1, 2, 0, 3)"
    assert right in source
    path = tmp_path / "my_mha.py"
    path.write_text(source.replace(right, "dcontext = dmerged.reshape(L, N, D, H)"
                                          ".transpose(1, 3, 0, 2)"))
    report = verify("multihead_attention", load(f"{path}:MultiheadAttention"))
    assert not report.passed and not report.error, report.error
    failed = {d.name for d in report.failures}
    assert {"grad.param.in_proj_weight", "grad.input.x"} <= failed
    assert "out" not in failed and "grad.param.out_proj.weight" not in failed
    assert any(d.check == "yours-vs-fd" for d in report.failures)


def test_verify_passes_a_users_torch_module(tmp_path):
    path = tmp_path / "my_torch_mha.py"
    path.write_text((ROOT / "torch_impl" / "transformer" / "multihead_attention.py").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = verify("multihead_attention", load(f"{path}:MultiheadAttention"),
                        dtype="float32")
    assert report.passed, report.table()
