"""Compare residual vs plain blocks stacked ten deep: output, the input gradient, every
block's input and the gradient with respect to it, and every fc weight and bias gradient.

No torch built-in is a residual stack, so there is no built-in witness; the NumPy twin is
checked against autograd and against finite differences. The extra plot shows why residual
connections exist: the gradient norm at each block's input, by depth, residual vs plain.

Run: ``python -m compare.layers.residual``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compare.concept import Bench, Case, Concept, Trial, perturb_parameters, randn
from compare.runner import run_module
from numpy_impl.layers import residual as numpy_twin
from torch_impl.layers import residual as torch_twin


def _perturb_strongly(module: Any, rng: np.random.Generator) -> None:
    """Plain stacks: at torch's default init the input gradient shrinks ~1000x over ten
    blocks, down to where central differences' own error (~eps |L| / h ~ 1e-9) is within a
    factor of a few of the 1e-6 tolerance; larger weights keep it well above, so finite
    differences test the backward, not their rounding. (The depth plot uses the default init.)"""
    perturb_parameters(module, rng, scale=0.4)


def _case(name: str, x_shape: tuple[int, ...], features: int, depth: int = 10,
          residual: bool = True) -> Case:
    return Case(name, numpy=numpy_twin.Stack, torch=torch_twin.Stack,
                init=dict(features=features, depth=depth, residual=residual),
                inputs=dict(x=randn(*x_shape)),
                prepare=perturb_parameters if residual else _perturb_strongly)


def input_gradient_norms(residual: bool, seed: int = 0, features: int = 16, depth: int = 10,
                         batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """||dL/dx_k|| for each block input x_k, k = 0 .. depth-1, from the NumPy twin and the
    torch twin (float64, torch's default init unperturbed, a random upstream gradient)."""
    case = Case("norms", numpy=numpy_twin.Stack, torch=torch_twin.Stack,
                init=dict(features=features, depth=depth, residual=residual),
                inputs=dict(x=randn(batch, features)), prepare=None)
    outcome = run_module(case, Trial("float64", seed=seed, builtin=False, fd=False))
    names = [f"grad.inter.block{k}.input" for k in range(depth)]
    return (np.array([np.linalg.norm(outcome.numpy[n]) for n in names]),
            np.array([np.linalg.norm(outcome.torch[n]) for n in names]))


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """residual_depth.png: the gradient norm at each block's input, by depth."""
    from compare.plots import new_figure, save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fig = new_figure(figsize=(7, 4.5), layout=None)
    ax = fig.subplots()
    for residual, colour in ((True, "tab:blue"), (False, "tab:red")):
        label = "residual" if residual else "plain"
        by_numpy, by_torch = input_gradient_norms(residual, seed)
        blocks = np.arange(len(by_numpy))
        ax.plot(blocks, by_torch, "-", color=colour, label=f"{label}: torch autograd")
        ax.plot(blocks, by_numpy, "o", color=colour, fillstyle="none",
                label=f"{label}: NumPy by hand")
    ax.set_yscale("log")
    ax.set_xlabel("block k (0 = the input, the gradient flows from right to left)")
    ax.set_ylabel("||dL/dx_k||  (input of block k)")
    ax.set_title("Gradient norm by depth, 10 blocks of tanh(Linear(16, 16)), float64\n"
                 "residual x + tanh(fc(x)) vs plain tanh(fc(x))")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = directory / "residual_depth.png"
    save(fig, path, dpi=100)
    return [path]


CONCEPT = Concept(
    name="residual",
    family="layers",
    summary="residual block x + tanh(fc(x)) vs plain tanh(fc(x)), stacked ten deep",
    compares="output; grad of x; every block's input and its grad; grads of each fc weight, bias",
    witness="none",
    extra_plots=extra_plots,
    bench=Bench("residual Stack, depth 10, features 512, on x (256, 512)",
                cases=(_case("bench", (256, 512), 512),)),
    cases=[
        _case("residual", (4, 5), 5),
        _case("plain", (4, 5), 5, residual=False),
        _case("residual-wide", (2, 8), 8),
        _case("plain-wide", (2, 8), 8, residual=False),
        _case("residual-3d-input", (2, 2, 4), 4),
        _case("batch-of-one", (1, 4), 4),
        _case("one-block", (3, 4), 4, depth=1),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
