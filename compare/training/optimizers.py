"""Compare the optimizers step by step: 100 steps on the same noisy objective, parameters and
every state tensor after every step.

Each case optimizes two parameters (a ``(3, 4)`` matrix and a ``(4,)`` vector, named
``param.0`` and ``param.1`` by their index, as ``torch.optim``'s state dict numbers them) on a
noisy diagonal quadratic::

    L(p) = s * sum(c/2 (p - p*)^2) + <xi_t, p>,      g_t = s * c (p_t - p*) + xi_t

with curvatures ``c``, minimizer ``p*`` and the noise ``xi_t`` drawn once from the trial's
Generator (``s = -1`` makes it a concave objective, for ``maximize=True``). Each twin computes
``g_t`` itself, elementwise, from its own parameters (the same IEEE operations on both sides), so
the gradient feeds back into the trajectory while the optimizer stays the only thing under
test. After step t the engine compares ``step{t}/param.{i}`` and ``step{t}/state.{i}.{name}``
(``exp_avg``, ``momentum_buffer``, ``step``, ...): NumPy twin vs torch twin, and the torch twin
vs ``torch.optim`` itself (the witness, every tenth step). A ``restore`` case saves the state
dict mid-run, builds a fresh optimizer, loads it and goes on.

Tolerance: float64 within 1e-12 normwise (stricter than the engine's 1e-10): an optimizer step is
a handful of elementwise operations per element, so the twins differ only where torch fuses a
multiply-add (``addcmul``, ``lerp``) that NumPy rounds twice -- a few ulps per step, and the
contraction of the quadratic keeps them from compounding over 100 steps.

Run: ``python -m compare.training.optimizers`` (``--plots DIR`` adds the Rosenbrock paths).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from compare.cli.bench import optimizer_work
from compare.concept import Bench, Case, Concept, Outcome, Trial
from compare.tolerances import Tolerance
from numpy_impl import Parameter
from numpy_impl.training import optimizers as numpy_twin
from torch_impl.training import optimizers as torch_twin

STEPS = 100
SHAPES = ((3, 4), (4,))
NOISE = 0.3
WITNESS_STEPS = {1, *range(10, STEPS + 1, 10)}


def _case(name: str, optimizer: str, *, sign: float = 1.0, groups: list[dict] | None = None,
          restore_at: int | None = None, **init: Any) -> Case:
    """``groups``: one dict of options per parameter (a parameter group each, as torch)."""
    return Case(name, numpy=getattr(numpy_twin, optimizer), torch=getattr(torch_twin, optimizer),
                builtin=_builtin(optimizer), init=init, prepare=None, fd=False,
                options=dict(sign=sign, groups=groups, restore_at=restore_at))
    # fd=False: there is no backward to differentiate; the gradients are given


def _builtin(optimizer: str) -> Any:
    def make(params: Any, **init: Any) -> Any:
        import torch
        return getattr(torch.optim, optimizer)(params, **init)
    make.__name__ = f"torch.optim.{optimizer}"
    return make


# --- the objective, drawn once per trial --------------------------------------------------------
def problem(trial: Trial) -> dict[str, Any]:
    """Initial parameters, curvatures c in [0.5, 2], minimizers p* and the noise xi_t."""
    rng = trial.rng()
    return {
        "init": [trial.cast(rng.standard_normal(s)) for s in SHAPES],
        "curvature": [trial.cast(rng.uniform(0.5, 2.0, s)) for s in SHAPES],
        "target": [trial.cast(rng.standard_normal(s)) for s in SHAPES],
        "noise": [trial.cast(NOISE * rng.standard_normal((STEPS, *s))) for s in SHAPES],
    }


def _param_arg(params: list[Any], groups: list[dict] | None) -> Any:
    """``model.parameters()`` or, with groups, ``[{"params": [p_i], **options_i}, ...]``."""
    if groups is None:
        return iter(params)  # a generator, as model.parameters() is
    return [{"params": [p], **options} for p, options in zip(params, groups, strict=True)]


def _record(values: dict[str, np.ndarray], t: int, params: list[np.ndarray],
            state_dict: dict[str, Any]) -> None:
    for i, p in enumerate(params):
        values[f"step{t}/param.{i}"] = p
    for i, entries in state_dict["state"].items():
        for name, value in entries.items():
            values[f"step{t}/state.{i}.{name}"] = _array(value)


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.array(value, copy=True)


def run_numpy(case: Case, data: dict[str, Any], cls: Any = None) -> dict[str, np.ndarray]:
    """The NumPy optimizer on NumPy Parameters; p.grad set from the objective each step."""
    sign, opts = case.options["sign"], case.options
    params = [Parameter(x) for x in data["init"]]
    make = lambda: (cls or case.numpy)(_param_arg(params, opts["groups"]), **case.init)  # noqa: E731
    optimizer = make()
    values: dict[str, np.ndarray] = {}
    for t in range(1, STEPS + 1):
        optimizer.zero_grad()
        for p, c, target, noise in zip(params, data["curvature"], data["target"],
                                       data["noise"], strict=True):
            p.grad = sign * (c * (p.data - target)) + noise[t - 1]          # g_t
        optimizer.step()
        if t == opts["restore_at"]:  # save, start a fresh optimizer, restore, go on
            saved = copy.deepcopy(optimizer.state_dict())
            optimizer = make()
            optimizer.load_state_dict(saved)
        _record(values, t, [p.data.copy() for p in params], optimizer.state_dict())
    return values


def run_torch(case: Case, data: dict[str, Any], trial: Trial, cls: Any) -> dict[str, np.ndarray]:
    """A torch optimizer (the twin or ``torch.optim``) on leaf tensors; same objective."""
    import torch
    sign, opts = case.options["sign"], case.options
    params = [torch.tensor(x, device=trial.device, requires_grad=True) for x in data["init"]]
    curvature, target, noise = ([torch.from_numpy(a).to(trial.device) for a in data[key]]
                                for key in ("curvature", "target", "noise"))
    make = lambda: cls(_param_arg(params, opts["groups"]), **case.init)  # noqa: E731
    optimizer = make()
    values: dict[str, np.ndarray] = {}
    for t in range(1, STEPS + 1):
        optimizer.zero_grad()
        with torch.no_grad():
            for p, c, p_star, xi in zip(params, curvature, target, noise, strict=True):
                p.grad = sign * (c * (p - p_star)) + xi[t - 1]
        optimizer.step()
        if t == opts["restore_at"]:
            saved = copy.deepcopy(optimizer.state_dict())
            optimizer = make()
            optimizer.load_state_dict(saved)
        _record(values, t, [_array(p) for p in params], optimizer.state_dict())
    return values


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    data = problem(trial)
    outcome = Outcome(numpy=run_numpy(case, data, numpy_cls),
                      torch=run_torch(case, data, trial, torch_cls or case.torch))
    if trial.builtin and case.builtin is not None:
        # the witness on steps 1, 10, 20, ..., 100: torch.optim needs checking against the
        # torch twin, not a 100-row table of it (the twins themselves: every step)
        builtin = run_torch(case, data, trial, case.builtin)
        outcome.builtin = {name: value for name, value in builtin.items()
                           if int(name.split("/")[0][4:]) in WITNESS_STEPS}
    return outcome


CASES = [
    _case("sgd", "SGD", lr=0.1),
    _case("sgd_momentum", "SGD", lr=0.05, momentum=0.9),
    _case("sgd_dampening", "SGD", lr=0.05, momentum=0.9, dampening=0.5),
    _case("sgd_nesterov", "SGD", lr=0.05, momentum=0.9, nesterov=True),
    _case("sgd_weight_decay", "SGD", lr=0.05, momentum=0.5, weight_decay=0.1),
    _case("sgd_maximize", "SGD", sign=-1.0, lr=0.05, momentum=0.9, maximize=True),
    _case("rmsprop", "RMSprop", lr=0.01),
    _case("rmsprop_centered_momentum", "RMSprop", lr=0.01, alpha=0.9, centered=True,
          momentum=0.5, weight_decay=0.1),
    _case("adagrad", "Adagrad", lr=0.1, lr_decay=0.01, weight_decay=0.1,
          initial_accumulator_value=0.1, eps=1e-6),
    _case("adam", "Adam", lr=0.05),
    _case("adam_amsgrad_maximize", "Adam", sign=-1.0, lr=0.05, betas=(0.8, 0.99),
          amsgrad=True, maximize=True),
    _case("adam_weight_decay", "Adam", lr=0.05, weight_decay=0.1),
    _case("adamw", "AdamW", lr=0.05, weight_decay=0.1),
    # parameter groups: each group's own lr (and momentum, betas) overrides the defaults
    _case("sgd_param_groups", "SGD", lr=0.05,
          groups=[{"lr": 0.1}, {"lr": 0.01, "momentum": 0.9, "nesterov": True}]),
    _case("adam_param_groups", "Adam", lr=0.05,
          groups=[{"lr": 0.1, "betas": (0.5, 0.9)}, {"amsgrad": True}]),
    # state_dict mid-run into a fresh optimizer: the trajectory must go on unchanged
    _case("adamw_state_restore", "AdamW", lr=0.05, amsgrad=True, restore_at=50),
    _case("rmsprop_state_restore", "RMSprop", lr=0.01, centered=True, momentum=0.5,
          restore_at=50),
]


# --- the plot: every optimizer on the Rosenbrock function ---------------------------------------
ROSENBROCK_START = (-1.2, 1.0)
ROSENBROCK_STEPS = 600
ROSENBROCK_RUNS = [  # (label, optimizer, options): step sizes that make progress on the valley
    ("SGD lr=1e-3", "SGD", dict(lr=1e-3)),
    ("SGD momentum 0.9, lr=5e-4", "SGD", dict(lr=5e-4, momentum=0.9)),
    ("SGD Nesterov 0.9, lr=5e-4", "SGD", dict(lr=5e-4, momentum=0.9, nesterov=True)),
    ("RMSprop lr=3e-3", "RMSprop", dict(lr=3e-3)),
    ("RMSprop centered + momentum 0.9, lr=2e-3", "RMSprop",
     dict(lr=2e-3, centered=True, momentum=0.9)),
    ("Adagrad lr=1", "Adagrad", dict(lr=1.0)),
    ("Adam lr=0.1", "Adam", dict(lr=0.1)),
    ("AdamW lr=0.1, weight_decay=0.1", "AdamW", dict(lr=0.1, weight_decay=0.1)),
]


def rosenbrock(x: Any, y: Any) -> Any:
    """f(x, y) = (1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1)."""
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def rosenbrock_paths(optimizer: str, options: dict, steps: int = ROSENBROCK_STEPS,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(steps + 1, 2) paths: the NumPy optimizer with the hand-derived gradient
    (df/dx = -2(1 - x) - 400 x (y - x^2), df/dy = 200 (y - x^2)), and the torch twin with
    autograd's, both in float64 from the same start."""
    import torch
    point = Parameter(np.array(ROSENBROCK_START, dtype=np.float64))
    numpy_opt = getattr(numpy_twin, optimizer)([point], **options)
    numpy_path = [point.data.copy()]
    for _ in range(steps):
        x, y = point.data
        point.grad = np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
        numpy_opt.step()
        numpy_path.append(point.data.copy())
    tensor = torch.tensor(ROSENBROCK_START, dtype=torch.float64, requires_grad=True)
    torch_opt = getattr(torch_twin, optimizer)([tensor], **options)
    torch_path = [tensor.detach().numpy().copy()]
    for _ in range(steps):
        torch_opt.zero_grad()
        rosenbrock(tensor[0], tensor[1]).backward()
        torch_opt.step()
        torch_path.append(tensor.detach().numpy().copy())
    return np.array(numpy_path), np.array(torch_path)


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """optimizers_rosenbrock.png: every optimizer's path on the Rosenbrock function, NumPy and
    torch overlaid on the loss contours (deterministic: the seed does not enter)."""
    from compare.plots import new_figure, save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    xs, ys = np.meshgrid(np.linspace(-2.0, 2.0, 300), np.linspace(-1.0, 3.0, 300))
    levels = np.logspace(-1, 3.5, 14)
    fig = new_figure(figsize=(18, 9), layout=None)
    axes = fig.subplots(2, 4, sharex=True, sharey=True)
    for ax, (label, optimizer, options) in zip(axes.flat, ROSENBROCK_RUNS, strict=True):
        by_numpy, by_torch = rosenbrock_paths(optimizer, options)
        gap = np.abs(by_numpy - by_torch).max()
        ax.contour(xs, ys, rosenbrock(xs, ys), levels=levels, cmap="Greys", linewidths=0.6)
        ax.plot(by_torch[:, 0], by_torch[:, 1], "-", color="tab:blue", linewidth=3, alpha=0.5,
                label="torch twin (autograd gradient)")
        ax.plot(by_numpy[:, 0], by_numpy[:, 1], "--", color="tab:red", linewidth=1.2,
                label="NumPy (hand-derived gradient)")
        ax.plot(*ROSENBROCK_START, "ko", markersize=4)
        ax.plot(1, 1, "k*", markersize=10)
        final = rosenbrock(*by_numpy[-1])
        ax.set_title(f"{label}\nf after {ROSENBROCK_STEPS} steps {final:.2e}; "
                     f"max|numpy - torch| {gap:.1e}", fontsize=9)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Optimizer paths on the Rosenbrock function f(x, y) = (1 - x)^2 + "
                 f"100 (y - x^2)^2 from {ROSENBROCK_START}, float64 (minimum * at (1, 1))")
    fig.tight_layout()
    path = directory / "optimizers_rosenbrock.png"
    save(fig, path, dpi=90)
    return [path]


CONCEPT = Concept(
    name="optimizers",
    family="training",
    summary="SGD, RMSprop, Adagrad, Adam and AdamW by hand, 100 steps, state after every step",
    compares=("parameters and every optimizer state tensor (momentum_buffer, square_avg, "
              "grad_avg, sum, exp_avg, exp_avg_sq, max_exp_avg_sq, step) after each of 100 "
              "steps: SGD (momentum, dampening, nesterov, weight_decay, maximize), RMSprop "
              "(centered, momentum), Adagrad, Adam (amsgrad, weight_decay), AdamW, parameter "
              "groups, state_dict save and restore mid-run; witness torch.optim; plot "
              "optimizers_rosenbrock.png"),
    witness="torch.optim",
    bench=Bench("one step of SGD (momentum 0.9) and of Adam over an MLP's 1.86M parameters, shapes "
                "(1024, 784), (1024,), (1024, 1024), (1024,), (10, 1024), (10,)",
                work=optimizer_work(
                    [(numpy_twin.SGD, torch_twin.SGD, _builtin("SGD"), dict(lr=0.01, momentum=0.9)),
                     (numpy_twin.Adam, torch_twin.Adam, _builtin("Adam"), dict(lr=1e-3))],
                    [(1024, 784), (1024,), (1024, 1024), (1024,), (10, 1024), (10,)])),
    cases=CASES,
    run=run,
    # float64: see the module docstring -- a few ulps per elementwise step, not compounding
    tolerance={"float64": Tolerance(rtol=1e-12)},
    extra_plots=extra_plots,
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
