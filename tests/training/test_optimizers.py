"""Focused tests for the optimizers: known answers, state_dict save/restore within and across
the twins and torch.optim, the error messages, the Rosenbrock plot, a user's class."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from compare.concept import Trial
from compare.registry import get
from compare.report import normwise_error
from compare.training import optimizers as comparison
from numpy_impl import Parameter
from numpy_impl.training import optimizers as npo
from torch_impl.training import optimizers as tho


def _quadratic_grads(rng: np.random.Generator, steps: int) -> list[np.ndarray]:
    return [rng.standard_normal(5) for _ in range(steps)]


def _numpy_run(cls, options, grads, restore_at=None, start=None):
    p = Parameter(np.linspace(-1.0, 1.0, 5) if start is None else start)
    opt = cls([p], **options)
    path = []
    for t, g in enumerate(grads, start=1):
        p.grad = g + 0.5 * p.data  # the gradient of 0.25 |p|^2 plus a drawn term
        opt.step()
        if t == restore_at:
            saved = copy.deepcopy(opt.state_dict())
            opt = cls([p], **options)
            opt.load_state_dict(saved)
        path.append(p.data.copy())
    return np.array(path), opt


def _torch_run(cls, options, grads, restore_at=None, state=None, start=None):
    p = torch.tensor(np.linspace(-1.0, 1.0, 5) if start is None else start, requires_grad=True)
    opt = cls([p], **options)
    if state is not None:
        opt.load_state_dict(state)
    path = []
    for t, g in enumerate(grads, start=1):
        with torch.no_grad():
            p.grad = torch.from_numpy(g) + 0.5 * p
        opt.step()
        if t == restore_at:
            saved = copy.deepcopy(opt.state_dict())
            opt = cls([p], **options)
            opt.load_state_dict(saved)
        path.append(p.detach().numpy().copy())
    return np.array(path), opt


OPTIONS = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1)),
]


@pytest.mark.parametrize("name,options", OPTIONS)
def test_restore_mid_run_continues_identically_in_both_twins(name, options):
    grads = _quadratic_grads(np.random.default_rng(1), 30)
    straight, _ = _numpy_run(getattr(npo, name), options, grads)
    restored, _ = _numpy_run(getattr(npo, name), options, grads, restore_at=12)
    np.testing.assert_array_equal(restored, straight)
    straight_t, _ = _torch_run(getattr(tho, name), options, grads)
    restored_t, _ = _torch_run(getattr(tho, name), options, grads, restore_at=12)
    np.testing.assert_array_equal(restored_t, straight_t)
    assert normwise_error(straight, straight_t) < 1e-12


@pytest.mark.parametrize("name,options", OPTIONS)
def test_state_dicts_move_between_numpy_and_torch_optim(name, options):
    grads = _quadratic_grads(np.random.default_rng(2), 20)
    # ten steps in NumPy, then its state dict (arrays -> tensors) drives torch.optim on
    whole, _ = _numpy_run(getattr(npo, name), options, grads)
    first, numpy_opt = _numpy_run(getattr(npo, name), options, grads[:10])
    state = numpy_opt.state_dict()
    as_tensors = {"param_groups": state["param_groups"],
                  "state": {i: {k: torch.as_tensor(v) for k, v in s.items()}
                            for i, s in state["state"].items()}}
    rest, _ = _torch_run(getattr(torch.optim, name), options, grads[10:], state=as_tensors,
                         start=first[-1])
    assert normwise_error(rest, whole[10:]) < 1e-12
    # and back: torch.optim's state dict (tensors, a tensor step) into the NumPy optimizer
    _, torch_opt = _torch_run(getattr(torch.optim, name), options, grads[:10])
    p = Parameter(first[-1])
    numpy_opt = getattr(npo, name)([p], **options)
    numpy_opt.load_state_dict(torch_opt.state_dict())
    loaded = numpy_opt.state[p]
    assert set(loaded) == set(torch_opt.state_dict()["state"][0])
    for key, value in torch_opt.state_dict()["state"][0].items():
        assert normwise_error(np.asarray(loaded[key]), value.numpy()) < 1e-12


@pytest.mark.parametrize("name,options", OPTIONS)
def test_state_dict_layout_is_torch_optims(name, options):
    a, b = Parameter(np.ones(3)), Parameter(np.ones(2))
    ta, tb = torch.ones(3, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    ours = getattr(npo, name)([{"params": [a]}, {"params": [b], "lr": 0.5}], **options)
    theirs = getattr(torch.optim, name)([{"params": [ta]}, {"params": [tb], "lr": 0.5}],
                                        **options)
    for p, t in ((a, ta), (b, tb)):
        p.grad, t.grad = np.full(p.shape, 0.1), torch.full(t.shape, 0.1, dtype=torch.float64)
    ours.step()
    theirs.step()
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert [g["params"] for g in mine["param_groups"]] == [[0], [1]]
    assert [g["lr"] for g in mine["param_groups"]] == [options["lr"], 0.5]
    for group, ref_group in zip(mine["param_groups"], reference["param_groups"], strict=True):
        assert set(group) <= set(ref_group)  # torch adds foreach, fused, ...: no NumPy meaning
        assert all(group[k] == ref_group[k] for k in group)
    assert {i: set(s) for i, s in mine["state"].items()} == \
        {i: set(s) for i, s in reference["state"].items()}


def test_known_answers_sgd_momentum_and_adam_first_step():
    p = Parameter(np.array([1.0, -2.0]))
    sgd = npo.SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    p.grad = np.array([1.0, 1.0])
    sgd.step()  # b1 = g = 1: p = [0.9, -2.1]
    sgd.step()  # b2 = 0.9 * 1 + 0.5 * 1 = 1.4: p = [0.76, -2.24]
    np.testing.assert_allclose(p.data, [0.76, -2.24], rtol=1e-15)
    np.testing.assert_allclose(sgd.state[p]["momentum_buffer"], [1.4, 1.4], rtol=1e-15)
    # Adam's first step: m_hat = g, v_hat = g^2, so each coordinate moves lr * g / (|g| + eps)
    q = Parameter(np.array([0.0, 0.0]))
    adam = npo.Adam([q], lr=0.01)
    q.grad = np.array([3.0, -0.5])
    adam.step()
    np.testing.assert_allclose(q.data, [-0.01 * 3 / (3 + 1e-8), 0.01 * 0.5 / (0.5 + 1e-8)],
                               rtol=1e-13)
    assert adam.state[q]["step"] == 1.0


def test_float32_stays_float32():
    p = Parameter(np.ones(4, dtype=np.float32))
    for cls in (npo.SGD, npo.RMSprop, npo.Adagrad, npo.Adam, npo.AdamW):
        opt = cls([p], lr=0.1)
        p.grad = np.full(4, 0.5, dtype=np.float32)
        opt.step()
        assert p.data.dtype == np.float32
        assert all(v.dtype == np.float32 for v in opt.state[p].values()
                   if isinstance(v, np.ndarray))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="empty parameter list"):
        npo.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        npo.SGD([Parameter(np.ones(2))], lr=0.1, nesterov=True)
    p = Parameter(np.ones(2))
    with pytest.raises(ValueError, match="more than one parameter group"):
        npo.Adam([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        npo.Adam([p], betas=(0.9, 1.0))
    opt = npo.Adam([p])
    with pytest.raises(ValueError, match="number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})


def test_zero_grad_and_param_groups_from_model_parameters():
    from numpy_impl.layers.linear import Linear
    model = Linear(3, 2).double()
    opt = npo.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.0}], lr=0.1)
    model.weight.grad += 1.0
    model.bias.grad += 1.0
    before = model.bias.data.copy()
    opt.step()
    np.testing.assert_array_equal(model.bias.data, before)   # lr 0 in the bias group
    opt.zero_grad()
    assert not model.weight.grad.any() and not model.bias.grad.any()
    assert len(npo.AdamW(model.parameters()).param_groups[0]["params"]) == 2


def test_a_users_optimizer_runs_in_the_comparison_and_a_bug_shows():
    class ForgotBiasCorrection(npo.Adam):
        def _update(self, p, grad, state, group):
            super()._update(p, grad, state, group)
            state["step"] = 0.0  # keeps 1 - beta^t at its first value: a wrong Adam
    case = get("optimizers").case("adam")
    good = comparison.run(case, Trial("float64"), numpy_cls=npo.Adam)
    bad = comparison.run(case, Trial("float64"), numpy_cls=ForgotBiasCorrection)
    assert normwise_error(good.numpy["step100/param.0"], good.torch["step100/param.0"]) < 1e-12
    assert normwise_error(bad.numpy["step100/param.0"], bad.torch["step100/param.0"]) > 1e-3


def test_rosenbrock_paths_agree_and_adam_approaches_the_minimum(tmp_path):
    by_numpy, by_torch = comparison.rosenbrock_paths("Adam", dict(lr=0.1), steps=600)
    assert normwise_error(by_numpy, by_torch) < 1e-10
    assert comparison.rosenbrock(*by_numpy[-1]) < comparison.rosenbrock(*by_numpy[0]) / 100
    paths = comparison.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["optimizers_rosenbrock.png"]
    assert paths[0].stat().st_size > 20_000
