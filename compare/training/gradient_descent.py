"""Compare batch gradient descent: the hand-derived gradient (NumPy) against autograd (torch),
iterate by iterate, on least squares and on logistic regression.

Each case draws a data set once (``X`` with per-feature scales, so the loss contours are
ellipses, not circles), starts both twins at the same ``w_0`` and runs ``steps`` updates
``w <- w - lr dL/dw``. Compared by name, every row an iterate:

- ``w`` ``(steps + 1, d)``: the path; ``loss`` ``(steps + 1,)``; ``grad`` ``(steps + 1, d)``:
  the gradient at every iterate (NumPy's formula vs autograd's);
- ``grad.start``: the gradient at ``w_0``, also against central finite differences.

That both paths converge to the right answer -- the closed-form least-squares solution
(``np.linalg.lstsq``) and Newton's method's logistic solution -- is asserted in
``tests/training/test_gradient_descent.py``. No torch built-in runs gradient descent on a loss
function (``torch.optim.SGD`` is the ``optimizers`` concept), so there is no built-in witness.

Benchmark size: 100 steps on logistic regression, (N, d) = (4096, 64).

Run: ``python -m compare.training.gradient_descent`` (``--plots DIR``: contours and paths).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compare.concept import Bench, Case, Concept, Outcome, Trial
from compare.finite_diff import numerical_gradient
from numpy_impl.training import gradient_descent as numpy_twin
from torch_impl.training import gradient_descent as torch_twin


def _case(name: str, loss: str, *, n: int, scales: tuple[float, ...], lr: float, steps: int,
          w0: tuple[float, ...] | None = None) -> Case:
    return Case(name, numpy=getattr(numpy_twin, loss), torch=getattr(torch_twin, loss),
                prepare=None, options=dict(loss=loss, n=n, scales=scales, lr=lr, steps=steps,
                                           w0=w0))


def data(case: Case, trial: Trial) -> dict[str, np.ndarray]:
    """X (N, d) with column scales, the targets y and the start w_0, from the trial's rng."""
    opts = case.options
    rng = trial.rng()
    d = len(opts["scales"])
    X = rng.standard_normal((opts["n"], d)) * np.array(opts["scales"])
    w_true = rng.uniform(-1.5, 1.5, d)
    if opts["loss"] == "least_squares":
        y = X @ w_true + 0.5 * rng.standard_normal(opts["n"])
    else:  # labels drawn from the model: not separable, so the minimizer is finite
        y = (rng.random(opts["n"]) < numpy_twin.sigmoid(X @ w_true)).astype(np.float64)
    w0 = np.array(opts["w0"]) if opts["w0"] is not None else rng.uniform(-3, 3, d)
    return {"X": trial.cast(X), "y": trial.cast(y), "w0": trial.cast(w0)}


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """``numpy_cls`` / ``torch_cls``: a user's loss function in place of the twin's."""
    import torch
    d = data(case, trial)
    opts = case.options
    loss_and_grad = numpy_cls or case.numpy
    mine = numpy_twin.gradient_descent(loss_and_grad, d["w0"], d["X"], d["y"], opts["lr"],
                                       opts["steps"])
    tensors = {k: torch.from_numpy(v.copy()) for k, v in d.items()}
    theirs = torch_twin.gradient_descent(torch_cls or case.torch, tensors["w0"], tensors["X"],
                                         tensors["y"], opts["lr"], opts["steps"])
    for values in (mine, theirs):
        values["grad.start"] = values["grad"][0]
    outcome = Outcome(numpy=mine, torch=theirs, inputs=d)
    if trial.fd and trial.dtype == "float64":
        w = d["w0"].copy()
        numeric = numerical_gradient(lambda: loss_and_grad(w, d["X"], d["y"])[0], w)
        outcome.fd = {"grad.start": (mine["grad.start"], numeric)}
    return outcome


CASES = [
    _case("least_squares_2d", "least_squares", n=40, scales=(1.0, 3.0), lr=0.15, steps=120,
          w0=(-2.5, 2.5)),
    _case("least_squares_5d", "least_squares", n=30, scales=(1.0, 1.0, 1.5, 2.0, 3.0), lr=0.1,
          steps=500),
    _case("logistic_2d", "logistic", n=60, scales=(1.0, 2.5), lr=1.0, steps=300,
          w0=(-3.0, 3.0)),
    # logits of +-100 in the first steps: softplus via logaddexp, sigmoid without overflow
    _case("logistic_large_logits", "logistic", n=20, scales=(20.0, 30.0), lr=0.01, steps=60,
          w0=(3.0, -3.0)),
]


def solution(case: Case, trial: Trial) -> np.ndarray:
    """The exact minimizer: lstsq's least-squares solution, or Newton's method's logistic one
    (Hessian X^T diag(p (1 - p)) X / N; quadratic convergence, 30 iterations are plenty)."""
    d = data(case, trial)
    X, y = d["X"], d["y"]
    if case.options["loss"] == "least_squares":
        return np.linalg.lstsq(X, y, rcond=None)[0]
    w = np.zeros(X.shape[1])
    for _ in range(30):
        p = numpy_twin.sigmoid(X @ w)
        hessian = X.T @ (X * (p * (1 - p))[:, None]) / len(y)
        w = w - np.linalg.solve(hessian, X.T @ (p - y) / len(y))
    return w


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """gradient_descent_paths.png: loss contours over (w_1, w_2) with both twins' paths and
    the exact minimizer; gradient_descent_loss_<case>.png: both loss curves, their difference."""
    from compare.plots import new_figure, plot_curves, save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    trial = Trial("float64", seed=seed, builtin=False, fd=False)
    fig = new_figure(figsize=(13, 5.5), layout=None)
    axes = fig.subplots(1, 2)
    paths = []
    for ax, name in zip(axes, ("least_squares_2d", "logistic_2d"), strict=True):
        case = CONCEPT.case(name)
        outcome = run(case, trial)
        d = data(case, trial)
        best = solution(case, trial)
        w_np, w_t = outcome.numpy["w"], outcome.torch["w"]
        low = np.minimum(w_np.min(axis=0), best) - 1.0
        high = np.maximum(w_np.max(axis=0), best) + 1.0
        g1, g2 = np.meshgrid(np.linspace(low[0], high[0], 120), np.linspace(low[1], high[1], 120))
        grid = np.stack([g1.ravel(), g2.ravel()], axis=1)           # (G, 2) weights
        z = grid @ d["X"].T                                         # (G, N)
        if case.options["loss"] == "least_squares":
            surface = ((z - d["y"]) ** 2).mean(axis=1) / 2
        else:
            surface = (np.logaddexp(0.0, z) - d["y"] * z).mean(axis=1)
        ax.contour(g1, g2, surface.reshape(g1.shape), levels=25, cmap="viridis",
                   linewidths=0.7)
        ax.plot(w_t[:, 0], w_t[:, 1], "-", color="tab:blue", linewidth=4, alpha=0.4,
                label="torch (autograd gradient)")
        ax.plot(w_np[:, 0], w_np[:, 1], ".--", color="tab:red", markersize=3, linewidth=1,
                label="NumPy (hand-derived gradient)")
        ax.plot(*best, "k*", markersize=12,
                label="lstsq solution" if "least" in name else "Newton solution")
        gap = np.abs(w_np - w_t).max()
        ax.set_title(f"{name}: lr {case.options['lr']}, {case.options['steps']} steps (float64)"
                     f"\nmax|numpy - torch| over the path {gap:.1e}", fontsize=9)
        ax.set_xlabel("w_1")
        ax.set_ylabel("w_2")
        ax.legend(fontsize=8)
        steps = np.arange(len(outcome.numpy["loss"]))
        paths.append(plot_curves(directory / f"gradient_descent_loss_{name}.png",
                                 f"{name}: loss along the gradient-descent path", steps,
                                 outcome.numpy["loss"], outcome.torch["loss"],
                                 xlabel="step k", ylabel="loss L(w_k)", dtype="float64"))
    fig.suptitle("Batch gradient descent on the loss contours, NumPy and torch paths overlaid")
    fig.tight_layout()
    path = directory / "gradient_descent_paths.png"
    save(fig, path, dpi=90)
    return [path, *paths]


BENCH_CASE = _case("bench", "logistic", n=4096, scales=tuple(np.linspace(1.0, 3.0, 64)), lr=0.5,
                   steps=100)


def _bench_work(trial: Trial) -> dict[str, Any]:
    """100 steps of batch gradient descent on logistic regression, (N, d) = (4096, 64), in
    each twin from the same w_0 (no built-in: the ratio is against the torch twin)."""
    import torch
    d, opts = data(BENCH_CASE, trial), BENCH_CASE.options
    tensors = {k: torch.from_numpy(v.copy()) for k, v in d.items()}
    return {"numpy": lambda: numpy_twin.gradient_descent(numpy_twin.logistic, d["w0"], d["X"],
                                                         d["y"], opts["lr"], opts["steps"]),
            "torch": lambda: torch_twin.gradient_descent(torch_twin.logistic, tensors["w0"],
                                                         tensors["X"], tensors["y"],
                                                         opts["lr"], opts["steps"])}


CONCEPT = Concept(
    name="gradient_descent",
    family="training",
    summary="batch gradient descent on least squares and logistic regression: hand-derived "
            "gradient vs autograd, iterate by iterate",
    compares=("the path of weights, the loss and the gradient at every iterate (least squares "
              "in 2 and 5 dims, logistic regression, logits of +-100); the gradient at the "
              "start also against finite differences; convergence to lstsq's / Newton's "
              "solution asserted in tests; no built-in; plot gradient_descent_paths.png"),
    witness="none",
    cases=CASES,
    run=run,
    bench=Bench("100 steps of batch gradient descent on logistic regression, (N, d) = "
                "(4096, 64) (no built-in: vs the torch twin)", work=_bench_work),
    extra_plots=extra_plots,
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
