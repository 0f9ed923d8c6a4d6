"""Focused tests of the losses: state_dict layout, constructors, errors, and the edge cases the
agreement suite cannot run (a 0-d class target) or states only implicitly (NaN with a zero
gradient when every target is ignored)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from numpy_impl.layers import losses as npl
from torch_impl.layers import losses as thl

W = [0.5, 2.0, 1.0, 1.5]


def _weights() -> torch.Tensor:
    return torch.tensor(W, dtype=torch.float64)


@pytest.mark.parametrize("cls, init", [
    ("MSELoss", {}),
    ("NLLLoss", {}),
    ("NLLLoss", {"weight": "w"}),
    ("CrossEntropyLoss", {}),
    ("CrossEntropyLoss", {"weight": "w", "label_smoothing": 0.1}),
    ("BCEWithLogitsLoss", {}),
    ("BCEWithLogitsLoss", {"pos_weight": "w"}),
    ("BCEWithLogitsLoss", {"weight": "w", "pos_weight": "w"}),
])
def test_state_dict_keys_and_values_equal_the_builtins(cls, init):
    init = {k: (_weights() if v == "w" else v) for k, v in init.items()}
    builtin = getattr(nn, cls)(**init).state_dict()
    twin = getattr(thl, cls)(**init).state_dict()
    numpy_state = getattr(npl, cls)(**init).state_dict()
    assert list(numpy_state) == list(twin) == list(builtin)
    for key, value in builtin.items():
        np.testing.assert_array_equal(numpy_state[key], value.numpy())
        assert numpy_state[key].dtype == np.float64


@pytest.mark.parametrize("weight", [W, np.array(W), torch.tensor(W, dtype=torch.float64)])
def test_numpy_constructor_takes_any_array_like_weight(weight):
    loss = npl.CrossEntropyLoss(weight)
    assert isinstance(loss.weight, np.ndarray)
    np.testing.assert_array_equal(loss.weight, W)


def test_integer_weights_become_floating_point():
    assert npl.NLLLoss(weight=[1, 2, 3]).weight.dtype == np.float32


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weight", [None, W])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_one_dim_input_with_a_zero_dim_target(smoothing, weight, reduction):
    # Not a Case: the runner hands inputs to torch through np.ascontiguousarray, which turns a
    # 0-d target into shape (1,).
    x = np.array([0.3, -1.2, 2.0, 0.7])
    init = dict(weight=None if weight is None else torch.tensor(weight, dtype=torch.float64),
                label_smoothing=smoothing, reduction=reduction)
    numpy_loss = npl.CrossEntropyLoss(**init)
    got = numpy_loss(x, np.array(2))
    dx = numpy_loss.backward(np.array(0.8))
    for module in (thl.CrossEntropyLoss(**init), nn.CrossEntropyLoss(**init)):
        xt = torch.tensor(x, requires_grad=True)
        expected = module(xt, torch.tensor(2))
        expected.backward(torch.tensor(0.8, dtype=torch.float64))
        assert np.shape(got) == tuple(expected.shape) == ()
        np.testing.assert_allclose(got, expected.item(), rtol=1e-14)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("cls, init", [
    ("CrossEntropyLoss", {}),
    ("CrossEntropyLoss", {"weight": "w", "label_smoothing": 0.2}),
    ("NLLLoss", {"weight": "w"}),
])
def test_every_target_ignored_gives_nan_mean_and_zero_gradient(cls, init):
    init = {k: (_weights() if v == "w" else v) for k, v in init.items()}
    x = np.random.default_rng(0).standard_normal((3, 4))
    target = np.full(3, -100)
    numpy_loss = getattr(npl, cls)(**init)
    with np.errstate(all="raise"):  # the NaN is the answer, not an accident: no warning
        value = numpy_loss(x, target)
        dx = numpy_loss.backward(np.array(1.0))
    assert np.isnan(value)
    assert np.array_equal(dx, np.zeros_like(x))
    for module in (getattr(thl, cls)(**init), getattr(nn, cls)(**init)):
        xt = torch.tensor(x, requires_grad=True)
        out = module(xt, torch.from_numpy(target))
        out.backward()
        assert torch.isnan(out) and torch.equal(xt.grad, torch.zeros_like(xt))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_give_finite_losses_without_overflow(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        ce = npl.CrossEntropyLoss(reduction="none")
        assert ce(x, np.array([1, 1])).tolist() == [2e4, 0.0]
        assert ce.backward(np.ones(2, dtype=dtype)).tolist() == [[1.0, -1.0, 0.0],
                                                                [0.0, 0.0, 0.0]]
        bce = npl.BCEWithLogitsLoss(reduction="none")
        y = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0]], dtype=dtype)
        loss = bce(x, y)
        dx, dy = bce.backward(np.ones_like(x))
    assert loss.dtype == dx.dtype == dy.dtype == dtype
    assert loss[:, :2].tolist() == [[1e4, 0.0], [1e4, 1e4]]
    assert dx[:, :2].tolist() == [[1.0, 0.0], [-1.0, 1.0]]


@pytest.mark.parametrize("cls", ["MSELoss", "NLLLoss", "CrossEntropyLoss", "BCEWithLogitsLoss"])
def test_float32_in_float32_out(cls):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    if cls in ("MSELoss", "BCEWithLogitsLoss"):
        target = rng.uniform(0, 1, (3, 4)).astype(np.float32)
    else:
        target = np.array([0, 3, 1])
    module = getattr(npl, cls)()
    value = module(x, target)
    grads = module.backward(np.float32(1.5))
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert value.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    expected = getattr(nn, cls)()(torch.from_numpy(x), torch.from_numpy(target))
    assert float(value) == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("cls", ["NLLLoss", "CrossEntropyLoss"])
@pytest.mark.parametrize("bad", [4, -1])
def test_target_out_of_range_raises_index_error_everywhere(cls, bad):
    x = np.zeros((3, 4))
    target = np.array([0, bad, 1])
    with pytest.raises(IndexError, match=f"Target {bad} is out of bounds"):
        getattr(npl, cls)()(x, target)
    for module in (getattr(thl, cls)(), getattr(nn, cls)()):
        with pytest.raises(IndexError, match=f"Target {bad} is out of bounds"):
            module(torch.from_numpy(x), torch.from_numpy(target))


@pytest.mark.parametrize("cls", ["NLLLoss", "CrossEntropyLoss"])
def test_wrong_target_shape_raises_value_error_in_both_twins(cls):
    x, target = np.zeros((3, 4)), np.array([0, 1])
    with pytest.raises(ValueError, match="target of shape"):
        getattr(npl, cls)()(x, target)
    with pytest.raises(ValueError, match="target of shape"):
        getattr(thl, cls)()(torch.from_numpy(x), torch.from_numpy(target))
    with pytest.raises(ValueError):
        getattr(nn, cls)()(torch.from_numpy(x), torch.from_numpy(target))


@pytest.mark.parametrize("cls", ["MSELoss", "BCEWithLogitsLoss"])
def test_input_and_target_shapes_must_match_in_both_twins(cls):
    x, y = np.zeros((3, 4)), np.zeros((3, 1))
    with pytest.raises(ValueError):
        getattr(npl, cls)()(x, y)
    with pytest.raises(ValueError):
        getattr(thl, cls)()(torch.from_numpy(x), torch.from_numpy(y))


@pytest.mark.parametrize("cls", ["MSELoss", "NLLLoss", "CrossEntropyLoss", "BCEWithLogitsLoss"])
def test_unknown_reduction_raises_value_error_in_both_twins(cls):
    for module in (npl, thl):
        with pytest.raises(ValueError, match="not a valid value for reduction"):
            getattr(module, cls)(reduction="average")


@pytest.mark.parametrize("smoothing", [-0.1, 1.5])
def test_label_smoothing_outside_unit_interval_is_rejected(smoothing):
    for module in (npl, thl):
        with pytest.raises(ValueError, match="label_smoothing"):
            module.CrossEntropyLoss(label_smoothing=smoothing)


def test_smoothed_weighted_mean_uses_the_target_weight_sum_as_denominator():
    # torch's rule, written out by hand: both terms are divided by D = Σ_n w_{t_n}.
    x = np.random.default_rng(3).standard_normal((5, 4))
    t = np.array([0, 3, 3, -100, 1])
    eps, w = 0.25, np.array(W)
    p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    valid = t != -100
    nll = -w[t[valid]] * p[valid, t[valid]]
    smooth = -(w * p[valid]).sum(axis=1)
    expected = ((1 - eps) * nll + eps / 4 * smooth).sum() / w[t[valid]].sum()
    got = npl.CrossEntropyLoss(w, label_smoothing=eps)(x, t)
    assert got == pytest.approx(expected, rel=1e-14)
    builtin = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), weight=_weights(),
                              label_smoothing=eps)
    assert builtin.item() == pytest.approx(expected, rel=1e-14)


def test_bce_target_gradient_matches_its_formula():
    # dl/dy = w (-x + (q - 1) softplus(-x)): the target is a float input with a gradient.
    x, y = np.array([-2.0, 0.5, 3.0]), np.array([0.2, 0.9, 0.5])
    q = np.array([2.0, 0.5, 1.0])
    loss = npl.BCEWithLogitsLoss(reduction="sum", pos_weight=q)
    loss(x, y)
    _, dy = loss.backward(np.array(1.0))
    np.testing.assert_allclose(dy, -x + (q - 1) * np.log1p(np.exp(-x)), rtol=1e-15)
