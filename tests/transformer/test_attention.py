"""Focused tests for scaled dot-product attention: torch's all-masked-row behaviour pinned,
finite differences of the functional backward with every mask, causality in both twins,
scores of +-1e4, masked weights exactly zero, dropout, and verify with broken copies."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compare.finite_diff import numerical_gradient
from compare.verify import verify
from numpy_impl import random as numpy_random
from numpy_impl.transformer import attention as na
from torch_impl.transformer import attention as ta


def _qkv(rng, lead=(2, 3), L=4, S=6, E=5, Ev=3):
    return (rng.standard_normal((*lead, L, E)), rng.standard_normal((*lead, S, E)),
            rng.standard_normal((*lead, S, Ev)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_all_masked_row_is_zero_in_torch_and_in_both_twins(dtype, kind):
    """torch 2.13.0's F.scaled_dot_product_attention returns 0 (not NaN) for a query whose keys
    are all masked, and gives that query, and the keys and values through it, zero gradient.
    Pinned here: a torch upgrade that changes it fails this test."""
    rng = np.random.default_rng(0)
    q, k, v = (torch.from_numpy(a).to(dtype).requires_grad_() for a in _qkv(rng))
    allowed = torch.from_numpy(rng.random((4, 6)) < 0.7)
    allowed[:, 0] = True
    allowed[1] = False                                                  # query 1 sees nothing
    mask = allowed if kind == "bool" else \
        torch.zeros(4, 6, dtype=dtype).masked_fill(~allowed, float("-inf"))
    g = torch.from_numpy(rng.standard_normal((2, 3, 4, 3))).to(dtype)

    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out.backward(g)
    assert torch.all(out[..., 1, :] == 0)
    assert torch.all(q.grad[..., 1, :] == 0)
    assert not any(t.isnan().any() for t in (out, q.grad, k.grad, v.grad))

    # the NumPy twin: weights and output of the dead row exactly 0, every gradient as torch
    out_np, cache = na.scaled_dot_product_attention(q.detach().numpy(), k.detach().numpy(),
                                                    v.detach().numpy(), mask.numpy())
    assert np.all(cache.weights[..., 1, :] == 0) and np.all(out_np[..., 1, :] == 0)
    grads = na.scaled_dot_product_attention_backward(g.numpy(), cache)
    assert np.all(grads[0][..., 1, :] == 0)
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    for mine, theirs in zip((out_np, *grads), (out, q.grad, k.grad, v.grad), strict=True):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=rtol, atol=rtol)

    # the torch twin
    qt, kt, vt = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out_t, weights_t = ta.scaled_dot_product_attention(qt, kt, vt, mask)
    out_t.backward(g)
    assert torch.all(weights_t[..., 1, :] == 0) and torch.all(out_t[..., 1, :] == 0)
    assert torch.all(qt.grad[..., 1, :] == 0) and not qt.grad.isnan().any()


MASKS = {
    "none": dict(),
    "causal": dict(is_causal=True),
    "bool": dict(attn_mask=np.random.default_rng(1).random((2, 1, 4, 6)) < 0.6),
    "float": dict(attn_mask=np.where(np.random.default_rng(2).random((4, 6)) < 0.3, -np.inf,
                                     np.random.default_rng(3).standard_normal((4, 6)))),
    "dropout": dict(dropout_p=0.3, dropout_mask=np.random.default_rng(4).random((2, 3, 4, 6))
                    >= 0.3, scale=0.4),
}


@pytest.mark.parametrize("masking", list(MASKS))
def test_functional_backward_matches_finite_differences(masking):
    rng = np.random.default_rng(5)
    q, k, v = _qkv(rng)
    options = MASKS[masking]
    out, cache = na.scaled_dot_product_attention(q, k, v, **options)
    g = rng.standard_normal(out.shape)
    analytic = na.scaled_dot_product_attention_backward(g, cache)
    loss = lambda: float(np.sum(na.scaled_dot_product_attention(q, k, v, **options)[0] * g))
    for grad, x in zip(analytic, (q, k, v), strict=True):
        numeric = numerical_gradient(loss, x)
        assert np.max(np.abs(grad - numeric)) <= 1e-7 * np.max(np.abs(numeric))


def test_score_gradient_is_the_float_mask_gradient():
    """attention_backward also returns dL/dS; a float mask is added to S, so dL/dM = dL/dS
    (summed over the dims the mask was broadcast along): checked by finite differences."""
    rng = np.random.default_rng(6)
    q, k, v = _qkv(rng)
    mask = rng.standard_normal((4, 6))
    out, cache = na.scaled_dot_product_attention(q, k, v, mask)
    g = rng.standard_normal(out.shape)
    dscores = na.attention_backward(g, cache)[3]
    numeric = numerical_gradient(
        lambda: float(np.sum(na.scaled_dot_product_attention(q, k, v, mask)[0] * g)), mask)
    np.testing.assert_allclose(na.sum_to_shape(dscores, mask.shape), numeric, atol=1e-8)


def test_verify_takes_the_functional_pair_on_every_case():
    pair = (na.scaled_dot_product_attention, na.scaled_dot_product_attention_backward)
    report = verify("attention:ScaledDotProductAttention", pair)
    assert report.passed, report.error or report.table()
    assert {d.case for d in report.diffs} >= {"float-mask", "dropout-bool-mask", "5d"}

    def forgot_the_scale(grad_out, cache):
        dq, dk, dv = na.scaled_dot_product_attention_backward(grad_out, cache)
        return dq / cache.scale, dk, dv
    report = verify("attention:ScaledDotProductAttention",
                    (na.scaled_dot_product_attention, forgot_the_scale))
    assert not report.passed and not report.error
    assert {d.name for d in report.failures} == {"grad.input.query"}


@pytest.mark.parametrize("t", [0, 2, 4])
def test_causal_output_at_t_ignores_inputs_after_t(t):
    """Perturb every input after position t: outputs up to t are bitwise unchanged (both twins,
    the functional and the self-attention layer); the output right after t does change."""
    rng = np.random.default_rng(7)
    q, k, v = _qkv(rng, lead=(2,), L=6, S=6)
    q2, k2, v2 = (a.copy() for a in (q, k, v))
    for a in (q2, k2, v2):
        a[:, t + 1:] += rng.standard_normal(a[:, t + 1:].shape)
    before = na.scaled_dot_product_attention(q, k, v, is_causal=True)[0]
    after = na.scaled_dot_product_attention(q2, k2, v2, is_causal=True)[0]
    assert np.array_equal(before[:, :t + 1], after[:, :t + 1])
    assert not np.allclose(before[:, t + 1], after[:, t + 1])
    tq = [torch.from_numpy(a) for a in (q, k, v, q2, k2, v2)]
    before_t = ta.scaled_dot_product_attention(*tq[:3], is_causal=True)[0]
    after_t = ta.scaled_dot_product_attention(*tq[3:], is_causal=True)[0]
    assert torch.equal(before_t[:, :t + 1], after_t[:, :t + 1])

    x = rng.standard_normal((2, 6, 8))
    x2 = x.copy()
    x2[:, t + 1:] += 1.0
    numpy_layer = na.SelfAttention(8, is_causal=True).double()
    torch_layer = ta.SelfAttention(8, is_causal=True).double()
    numpy_layer.load_state_dict(torch_layer.state_dict())
    for layer, wrap in ((numpy_layer, np.asarray), (torch_layer, torch.from_numpy)):
        a, _ = layer(wrap(x))
        b, _ = layer(wrap(x2))
        a, b = np.asarray(a.detach() if hasattr(a, "detach") else a), \
            np.asarray(b.detach() if hasattr(b, "detach") else b)
        assert np.array_equal(a[:, :t + 1], b[:, :t + 1])
        assert not np.allclose(a[:, t + 1], b[:, t + 1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scores_of_1e4_are_stable_and_masked_weights_exactly_zero(dtype):
    """A float mask of +-1e4 puts the scores at +-1e4: e^{1e4} would overflow; after the
    row-max shift every weight is finite. Each row has one +1e4 entry, so the weights are
    exactly one-hot; masked (-inf) entries are exactly 0 next to them."""
    rng = np.random.default_rng(8)
    q, k, v = (a.astype(dtype) for a in _qkv(rng, lead=(2,)))
    big = np.full((4, 6), -1e4, dtype)
    big[np.arange(4), [3, 1, 5, 2]] = 1e4
    big[:, 0] = -np.inf
    out, cache = na.scaled_dot_product_attention(q, k, v, big)
    assert np.isfinite(out).all() and np.isfinite(cache.weights).all()
    assert np.all(cache.weights[..., 0] == 0)
    np.testing.assert_array_equal(cache.weights.argmax(-1), np.broadcast_to([3, 1, 5, 2], (2, 4)))
    np.testing.assert_allclose(cache.weights.sum(-1), 1, rtol=1e-6)
    reference = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v, big)))
    np.testing.assert_allclose(out, reference.numpy(), rtol=1e-6, atol=1e-6)
    grads = na.scaled_dot_product_attention_backward(np.ones_like(out), cache)
    assert all(np.isfinite(g).all() for g in grads)


def test_dropout_draws_its_own_mask_when_none_is_given():
    numpy_random.manual_seed(0)
    q, k, v = _qkv(np.random.default_rng(9), lead=(50, 40))
    _, cache = na.scaled_dot_product_attention(q, k, v, dropout_p=0.25)
    kept = cache.keep.mean()
    # 48,000 Bernoulli(0.75) draws: standard deviation 0.002; 6 sigma
    assert abs(kept - 0.75) < 0.012
    np.testing.assert_allclose(cache.dropped, cache.weights * cache.keep / 0.75, rtol=1e-15)


def test_causal_with_an_explicit_mask_is_refused_as_torch_refuses_it():
    q, k, v = _qkv(np.random.default_rng(10))
    with pytest.raises(RuntimeError, match="should not be set when is_causal=True"):
        na.scaled_dot_product_attention(q, k, v, np.ones((4, 6), bool), is_causal=True)


class SoftmaxBackwardWithoutTheRowSum(na.SelfAttention):
    """The classic mistake: dS = P * dP, forgetting the - sum_j dP_j P_j term."""

    def backward(self, grad_output):
        grad_out, grad_weights = grad_output
        cache = self._cache
        dvalue = np.swapaxes(cache.dropped, -1, -2) @ grad_out
        dweights = grad_out @ np.swapaxes(cache.value, -1, -2) + grad_weights
        dscores = cache.weights * dweights                              # the bug
        dquery = cache.scale * dscores @ cache.key
        dkey = cache.scale * np.swapaxes(dscores, -1, -2) @ cache.query
        return self.query.backward(dquery) + self.key.backward(dkey) + \
            self.value.backward(dvalue)


class TorchSelfAttentionUnscaled(ta.SelfAttention):
    """A torch module that forgets 1/sqrt(d)."""

    def forward(self, x, attn_mask=None, dropout_mask=None):
        return ta.scaled_dot_product_attention(self.query(x), self.key(x), self.value(x),
                                               attn_mask, is_causal=self.is_causal, scale=1.0)


def test_verify_finds_a_broken_softmax_backward():
    report = verify("attention:SelfAttention", SoftmaxBackwardWithoutTheRowSum)
    assert not report.passed and not report.error, report.error
    failed = {d.name for d in report.failures}
    assert "grad.param.query.weight" in failed and "grad.input.x" in failed
    assert not any(d.name.startswith("out") for d in report.failures)   # the forward is right
    assert any(d.check == "yours-vs-fd" for d in report.failures)


def test_verify_passes_the_twins_and_catches_a_torch_module_bug():
    assert verify("attention:SelfAttention", na.SelfAttention).passed
    assert verify("attention:ScaledDotProductAttention", ta.ScaledDotProductAttention).passed
    report = verify("attention:SelfAttention", TorchSelfAttentionUnscaled)
    assert not report.passed and not report.error
    assert {"out.0", "out.1"} <= {d.name for d in report.failures}
