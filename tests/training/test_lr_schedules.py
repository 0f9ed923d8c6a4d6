"""Focused tests for the learning-rate schedules: known values, OneCycleLR's defaults, the
state_dict round trip, agreement with torch's recursive forms over long runs, the plot."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from compare.training import lr_schedules as comparison
from numpy_impl import Parameter
from numpy_impl.training import lr_schedules as nps
from numpy_impl.training.optimizers import SGD, Adam


def _sgd(lr: float = 0.1, momentum: float = 0.9) -> SGD:
    return SGD([Parameter(np.zeros(2))], lr=lr, momentum=momentum)


def _rates(scheduler, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return rates


def test_known_values():
    assert _rates(nps.StepLR(_sgd(), step_size=2, gamma=0.5), 5) == \
        pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025], rel=1e-15)
    assert _rates(nps.ExponentialLR(_sgd(), gamma=0.5), 3) == \
        pytest.approx([0.1, 0.05, 0.025], rel=1e-15)
    cosine = _rates(nps.CosineAnnealingLR(_sgd(), T_max=4, eta_min=0.02), 5)
    assert cosine == pytest.approx([0.1, 0.02 + 0.08 * (1 + math.cos(math.pi / 4)) / 2, 0.06,
                                    0.02 + 0.08 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.02],
                                   rel=1e-14)
    warm = _rates(nps.LambdaLR(_sgd(), nps.warmup_cosine(4, 8)), 8)
    assert warm[:5] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1], rel=1e-15)
    assert warm[6] == pytest.approx(0.05, rel=1e-14)   # halfway down the cosine


def test_one_cycle_defaults_and_momentum():
    optimizer = _sgd()
    scheduler = nps.OneCycleLR(optimizer, max_lr=1.0, total_steps=100)
    rates, momenta = [], []
    for _ in range(100):
        rates.append(scheduler.get_last_lr()[0])
        momenta.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(1.0 / 25, rel=1e-15)          # max_lr / div_factor
    assert max(rates) == pytest.approx(1.0, rel=1e-15)
    assert int(np.argmax(rates)) == 29                              # end of pct_start = 0.3
    assert rates[-1] == pytest.approx(1.0 / 25 / 1e4, rel=1e-12)  # / final_div_factor
    assert momenta[0] == 0.95 and momenta[29] == pytest.approx(0.85, rel=1e-15)
    adam = Adam([Parameter(np.zeros(2))], betas=(0.9, 0.99))
    nps.OneCycleLR(adam, max_lr=0.01, total_steps=10)
    assert adam.param_groups[0]["betas"] == (0.95, 0.99)            # beta1 cycles, beta2 kept
    with pytest.raises(ValueError, match="momentum or beta1"):
        from numpy_impl.training.optimizers import Adagrad
        nps.OneCycleLR(Adagrad([Parameter(np.zeros(2))]), max_lr=0.1, total_steps=10)
    with pytest.raises(ValueError, match="total steps"):
        over = nps.OneCycleLR(_sgd(), max_lr=0.1, total_steps=2)
        for _ in range(3):
            over.step()


@pytest.mark.parametrize("name,kwargs", [
    ("StepLR", dict(step_size=3, gamma=0.7)), ("ExponentialLR", dict(gamma=0.97)),
    ("CosineAnnealingLR", dict(T_max=50, eta_min=1e-3)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=200))])
def test_closed_forms_track_torch_recursions_over_200_steps(name, kwargs):
    ours = getattr(nps, name)(_sgd(), **kwargs)
    t_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
    theirs = getattr(torch.optim.lr_scheduler, name)(t_opt, **kwargs)
    a, b = [], []
    for _ in range(199):
        a.append(ours.get_last_lr()[0])
        b.append(theirs.get_last_lr()[0])
        t_opt.step()
        ours.step()
        theirs.step()
    assert np.max(np.abs(np.array(a) - b)) <= 1e-12 * np.max(np.abs(b))
    assert ours.last_epoch == theirs.last_epoch == 199


def test_state_dict_round_trip_continues_identically():
    first = nps.CosineAnnealingLR(_sgd(), T_max=10)
    for _ in range(4):
        first.step()
    saved = first.state_dict()
    assert saved["last_epoch"] == 4 and saved["base_lrs"] == [0.1]
    optimizer = _sgd()
    optimizer.param_groups[0]["initial_lr"] = 0.1
    resumed = nps.CosineAnnealingLR(optimizer, T_max=10)
    resumed.load_state_dict(saved)
    for _ in range(3):
        first.step()
        resumed.step()
    assert resumed.get_last_lr() == first.get_last_lr()
    assert resumed.last_epoch == 7


def test_plot_is_written(tmp_path):
    paths = comparison.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["lr_schedules_curves.png"]
    assert paths[0].stat().st_size > 20_000
