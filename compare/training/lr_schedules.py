"""Compare the learning-rate schedules value by value, each driving its twin's optimizer.

A case builds an optimizer with two parameter groups (base rates 0.1 and 0.05, a ``(4,)``
parameter each) and a scheduler, then for ``EPOCHS`` epochs records each group's rate
(``get_last_lr()``), takes one optimizer step on a noisy quadratic
(``g_t = c (p_t - p*) + xi_t``, drawn once) and steps the scheduler. Compared by name:

- ``lr`` ``(epochs, groups)``: the schedule itself, every value;
- ``momentum`` (SGD) or ``beta1`` (Adam) ``(epochs, groups)``, where OneCycleLR cycles it;
- ``param.0``, ``param.1`` ``(epochs, 4)``: the trajectories the schedule drove;
- ``last_epoch``.

The NumPy twin drives the NumPy optimizers (``numpy_impl.training.optimizers``), the torch twin
(closed forms on torch's ``LRScheduler``) drives the torch twin's; the witness is
``torch.optim.lr_scheduler`` (recursive forms) driving ``torch.optim``. Linear warm-up + cosine
decay is ``LambdaLR`` with ``warmup_cosine`` in the twins, and its witness is built the other
way: ``SequentialLR([LinearLR(1/w -> 1 over w - 1 steps), CosineAnnealingLR(T_max=total - w)],
milestones=[w])``, so the two constructions check each other.

Tolerance: the engine's defaults (float64 1e-10; the closed and recursive forms differ by a
few ulps per step).

Benchmark size: 100 epochs of five schedules, each driving an SGD optimizer (two groups).

Run: ``python -m compare.training.lr_schedules`` (``--plots DIR``: every schedule drawn).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compare.concept import Bench, Case, Concept, Outcome, Trial
from numpy_impl import Parameter
from numpy_impl.training import lr_schedules as numpy_twin
from numpy_impl.training import optimizers as numpy_optim
from torch_impl.training import lr_schedules as torch_twin
from torch_impl.training import optimizers as torch_optim

EPOCHS = 30
BASE_LRS = (0.1, 0.05)
SIZE = 4


def _case(name: str, scheduler: str, optimizer: str = "SGD", *,
          warmup: tuple[int, int] | None = None, **init: Any) -> Case:
    return Case(name, numpy=getattr(numpy_twin, scheduler), torch=getattr(torch_twin, scheduler),
                builtin=_builtin(scheduler, warmup), init=init, prepare=None, fd=False,
                options=dict(optimizer=optimizer, warmup=warmup))
    # fd=False: a schedule has no gradient to check; the optimizer's gradients are given


def _builtin(scheduler: str, warmup: tuple[int, int] | None) -> Any:
    def make(optimizer: Any, **init: Any) -> Any:
        from torch.optim import lr_scheduler
        if warmup is None:
            return getattr(lr_scheduler, scheduler)(optimizer, **init)
        w, total = warmup
        return lr_scheduler.SequentialLR(optimizer, [
            lr_scheduler.LinearLR(optimizer, start_factor=1 / w, end_factor=1.0,
                                  total_iters=w - 1),
            lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - w)], milestones=[w])
    make.__name__ = f"torch.optim.lr_scheduler.{scheduler}"
    return make


def problem(trial: Trial) -> dict[str, Any]:
    rng = trial.rng()
    shape = (len(BASE_LRS), SIZE)
    return {"init": trial.cast(rng.standard_normal(shape)),
            "curvature": trial.cast(rng.uniform(0.5, 2.0, shape)),
            "target": trial.cast(rng.standard_normal(shape)),
            "noise": trial.cast(0.3 * rng.standard_normal((EPOCHS, *shape)))}


def _optimizer_options(name: str) -> dict[str, Any]:
    return dict(momentum=0.9) if name == "SGD" else {}


def _history(optimizer: Any, scheduler: Any, params: list[Any], read: Any,
             set_grads: Any) -> dict[str, np.ndarray]:
    """Record rates (and momentum) per epoch, step the optimizer, then the scheduler."""
    lrs, momenta, paths = [], [], []
    momentum_key = "betas" if "betas" in optimizer.defaults else "momentum"
    for t in range(EPOCHS):
        lrs.append(scheduler.get_last_lr())
        momenta.append([g[momentum_key][0] if momentum_key == "betas" else g[momentum_key]
                        for g in optimizer.param_groups])
        set_grads(t)
        optimizer.step()
        scheduler.step()
        paths.append([read(p) for p in params])
    paths_array = np.array(paths)                                         # (E, G, SIZE)
    values = {"lr": np.array(lrs), "last_epoch": np.array(float(scheduler.last_epoch))}
    values["beta1" if momentum_key == "betas" else "momentum"] = np.array(momenta)
    for i in range(len(params)):
        values[f"param.{i}"] = paths_array[:, i]
    return values


def run_numpy(case: Case, data: dict[str, Any], cls: Any = None) -> dict[str, np.ndarray]:
    name = case.options["optimizer"]
    params = [Parameter(x) for x in data["init"]]
    optimizer = getattr(numpy_optim, name)(
        [{"params": [p], "lr": lr} for p, lr in zip(params, BASE_LRS, strict=True)],
        **_optimizer_options(name))
    init = dict(case.init)
    if case.options["warmup"]:
        init["lr_lambda"] = numpy_twin.warmup_cosine(*case.options["warmup"])
    scheduler = (cls or case.numpy)(optimizer, **init)

    def set_grads(t: int) -> None:
        for i, p in enumerate(params):
            p.grad = data["curvature"][i] * (p.data - data["target"][i]) + data["noise"][t, i]
    return _history(optimizer, scheduler, params, lambda p: p.data.copy(), set_grads)


def run_torch(case: Case, data: dict[str, Any], trial: Trial, cls: Any,
              optimizers: Any) -> dict[str, np.ndarray]:
    import torch
    name = case.options["optimizer"]
    params = [torch.tensor(x, requires_grad=True) for x in data["init"]]
    c, target, noise = (torch.from_numpy(data[k]) for k in ("curvature", "target", "noise"))
    optimizer = getattr(optimizers, name)(
        [{"params": [p], "lr": lr} for p, lr in zip(params, BASE_LRS, strict=True)],
        **_optimizer_options(name))
    init = dict(case.init)
    if case.options["warmup"] and cls is not case.builtin:
        init["lr_lambda"] = torch_twin.warmup_cosine(*case.options["warmup"])
    scheduler = cls(optimizer, **init)

    def set_grads(t: int) -> None:
        with torch.no_grad():
            for i, p in enumerate(params):
                p.grad = c[i] * (p - target[i]) + noise[t, i]
    return _history(optimizer, scheduler, params, lambda p: p.detach().numpy().copy(),
                    set_grads)


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    import torch
    data = problem(trial)
    outcome = Outcome(numpy=run_numpy(case, data, numpy_cls),
                      torch=run_torch(case, data, trial, torch_cls or case.torch, torch_optim))
    if trial.builtin and case.builtin is not None:
        outcome.builtin = run_torch(case, data, trial, case.builtin, torch.optim)
    return outcome


WARMUP = (5, EPOCHS)
CASES = [
    _case("step", "StepLR", step_size=7, gamma=0.5),
    _case("exponential", "ExponentialLR", gamma=0.9),
    _case("cosine", "CosineAnnealingLR", T_max=20, eta_min=0.001),  # past T_max: back up
    _case("one_cycle_sgd", "OneCycleLR", max_lr=[0.5, 0.2], total_steps=EPOCHS),
    _case("one_cycle_adam", "OneCycleLR", "Adam", max_lr=0.05, total_steps=EPOCHS,
          pct_start=0.25, base_momentum=0.8, max_momentum=0.9),
    _case("warmup_cosine", "LambdaLR", warmup=WARMUP),
]


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """lr_schedules_curves.png: every schedule's first-group rate, NumPy twin, torch twin, torch's
    built-in overlaid (float64), and OneCycleLR's cycled momentum."""
    from compare.plots import new_figure, save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fig = new_figure(figsize=(15, 8), layout=None)
    axes = fig.subplots(2, 3)
    for ax, case in zip(axes.flat, CASES, strict=True):
        outcome = run(case, Trial("float64", seed=seed))
        epochs = np.arange(EPOCHS)
        ax.plot(epochs, outcome.builtin["lr"][:, 0], "-", linewidth=4, alpha=0.35,
                color="tab:green", label="torch.optim.lr_scheduler")
        ax.plot(epochs, outcome.torch["lr"][:, 0], "-", color="tab:blue", label="torch twin")
        ax.plot(epochs, outcome.numpy["lr"][:, 0], "o", fillstyle="none", color="tab:red",
                markersize=4, label="NumPy twin")
        gap = np.abs(outcome.numpy["lr"] - outcome.builtin["lr"]).max()
        ax.set_title(f"{case.name}: {case.numpy.__name__} (float64)\n"
                     f"max|numpy - torch.optim| = {gap:.1e}", fontsize=9)
        ax.set_xlabel("epoch t (scheduler.last_epoch)")
        ax.set_ylabel("learning rate of group 0")
        if "momentum" in outcome.numpy and case.name.startswith("one_cycle"):
            twin = ax.twinx()
            twin.plot(epochs, outcome.numpy["momentum"][:, 0], ":", color="tab:purple")
            twin.set_ylabel("momentum (dotted)", color="tab:purple")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Learning-rate schedules, NumPy vs torch twin vs torch.optim.lr_scheduler "
                 "(float64)")
    fig.tight_layout()
    path = directory / "lr_schedules_curves.png"
    save(fig, path, dpi=90)
    return [path]


BENCH_STEPS = 100
BENCH_CASES = [
    _case("bench-step", "StepLR", step_size=30, gamma=0.1),
    _case("bench-exponential", "ExponentialLR", gamma=0.97),
    _case("bench-cosine", "CosineAnnealingLR", T_max=BENCH_STEPS, eta_min=0.001),
    _case("bench-one-cycle", "OneCycleLR", max_lr=[0.5, 0.2], total_steps=BENCH_STEPS + 1),
    _case("bench-warmup-cosine", "LambdaLR", warmup=(10, BENCH_STEPS)),
]


def _bench_work(trial: Trial) -> dict[str, Any]:
    """A 100-epoch schedule of each of StepLR, ExponentialLR, CosineAnnealingLR, OneCycleLR and
    linear warm-up + cosine: the scheduler built on an SGD (momentum) optimizer with two
    parameter groups (fixed gradients), then 100 epochs of optimizer.step(), scheduler.step()
    and get_last_lr(), as a training loop does."""
    import torch
    init = trial.cast(np.random.default_rng(trial.seed).standard_normal((len(BASE_LRS), SIZE)))

    def numpy_schedule(case: Case) -> list[Any]:
        params = [Parameter(x.copy()) for x in init]
        for p in params:
            p.grad = np.ones_like(p.data)
        optimizer = numpy_optim.SGD([{"params": [p], "lr": lr}
                                     for p, lr in zip(params, BASE_LRS, strict=True)], momentum=0.9)
        options = dict(case.init)
        if case.options["warmup"]:
            options["lr_lambda"] = numpy_twin.warmup_cosine(*case.options["warmup"])
        scheduler = case.numpy(optimizer, **options)
        return [(optimizer.step(), scheduler.step(), scheduler.get_last_lr())
                for _ in range(BENCH_STEPS)]

    def torch_schedule(case: Case, cls: Any, optimizers: Any) -> list[Any]:
        params = [torch.tensor(x, requires_grad=True) for x in init]
        for p in params:
            p.grad = torch.ones_like(p)
        optimizer = optimizers.SGD([{"params": [p], "lr": lr}
                                    for p, lr in zip(params, BASE_LRS, strict=True)], momentum=0.9)
        options = dict(case.init)
        if case.options["warmup"] and cls is not case.builtin:
            options["lr_lambda"] = torch_twin.warmup_cosine(*case.options["warmup"])
        scheduler = cls(optimizer, **options)
        return [(optimizer.step(), scheduler.step(), scheduler.get_last_lr())
                for _ in range(BENCH_STEPS)]
    return {"numpy": lambda: [numpy_schedule(c) for c in BENCH_CASES],
            "torch": lambda: [torch_schedule(c, c.torch, torch_optim) for c in BENCH_CASES],
            "builtin": lambda: [torch_schedule(c, c.builtin, torch.optim) for c in BENCH_CASES]}


CONCEPT = Concept(
    name="lr_schedules",
    family="training",
    summary="StepLR, ExponentialLR, CosineAnnealingLR, OneCycleLR, warm-up + cosine, value by "
            "value, driving the optimizers",
    compares=("every learning rate per epoch and group, OneCycleLR's cycled momentum / beta1, "
              "the parameter trajectories they drive, last_epoch: StepLR, ExponentialLR, "
              "CosineAnnealingLR (past T_max), OneCycleLR (SGD and Adam), linear warm-up + "
              "cosine as LambdaLR; witness torch.optim.lr_scheduler (warm-up: SequentialLR of "
              "LinearLR and CosineAnnealingLR); plot lr_schedules_curves.png"),
    witness="torch.optim.lr_scheduler",
    cases=CASES,
    run=run,
    bench=Bench("100 epochs of StepLR, ExponentialLR, CosineAnnealingLR, OneCycleLR and warm-up "
                "+ cosine, each driving an SGD optimizer of two parameter groups",
                work=_bench_work),
    extra_plots=extra_plots,
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
