"""Compare gradient flow by depth: stacks of 2 to 24 transformer blocks, pre-LN and post-LN,
the gradient at every layer in both twins -- and what the norms look like.

Cases (the module runner, then the norms): the output of the stack under a random upstream
gradient; the gradient of the input and of every parameter of every block; the residual
stream x_0 .. x_L (``inter.stream.<l>``) and its gradient at every layer; and the per-layer
norms each twin's ``gradient_norms`` computes from its own gradients (``norm.residual``
(L + 1,): ||dL/dx_l||, ``norm.params`` (L,): block l's parameter-gradient norm). Depths 2,
6, 12 and 24, pre-LN and post-LN; the blocks are the ``transformer`` family's
``TransformerBlock`` (causal multi-head self-attention and a GELU MLP). Finite differences
check the NumPy backward of the two depth-2 stacks (8 sampled elements of the input and of
every parameter). Witness: the same stack of
``nn.TransformerEncoderLayer(norm_first=..., activation="gelu", batch_first=True)`` with the
causal mask, loading the twins' state dict unchanged (its block norm comes from its own
gradients).

What the plot shows (``gradient_flow.png``, ``profile``: torch's default initialization,
unit-normal inputs and upstream gradients, N = 4, T = 8, C = 32, mean over 3 draws; the
NumPy twin solid, the torch twin's markers on top, agreeing): the norm of each block's
parameter gradient against its layer, one line per depth, pre-LN left, post-LN right.

- post-LN: nearly flat across layers at every depth (within 1.3x over 24 blocks, slightly
  larger next to the input), and at the same height at every depth: the top block's
  gradient norm is 181, 190, 207, 210 at depths 2, 6, 12, 24 -- every block re-normalizes
  the stream, so the top sees an O(1) input and an O(1) gradient however deep the stack;
- pre-LN: the gradient of the upper blocks shrinks as the stack deepens (top block: 168,
  147, 135, 104) -- the residual stream grows with depth and the final LayerNorm divides the
  gradient by its size -- and within a deep stack it falls from the first block to the last
  (2.45x at depth 24: each block adds its branch's share to the residual gradient on the
  way down);
- so at depth the post-LN stack's gradients toward the output layers are larger than the
  pre-LN stack's, increasingly with depth (top block: 1.08x at depth 2, 2.0x at depth 24):
  the known result of Xiong et al. (2020) -- the post-LN gradient at the last layers does not
  depend on L while the pre-LN one scales like 1/sqrt(L) -- which is why post-LN needs a
  learning-rate warm-up and pre-LN does not. What these stacks do NOT show at
  initialization is a post-LN gradient growing from block to block toward the output within
  one stack: with torch's initialization and a random upstream gradient the post-LN profile
  is flat (the issue expected growth toward the output). ``tests/advanced/
  test_gradient_flow.py`` asserts the measured trends.

Tolerance: the defaults.

Benchmark size: depth 24, (N, T, C) = (4, 8, 32), 2 heads.

Run: ``python -m compare.advanced.gradient_flow`` (``--plots DIR`` adds gradient_flow.png).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compare.concept import Bench, Case, Concept, Outcome, Trial, perturb_parameters, randn
from compare.finite_diff import numerical_gradient
from compare.runner import initial_state, numpy_twin, run_module
from numpy_impl.advanced import gradient_flow as numpy_flow
from torch_impl.advanced import gradient_flow as torch_flow

N, T, C, HEADS = 2, 5, 16, 2
DEPTHS = (2, 6, 12, 24)


class BuiltinEncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer`` (GELU, batch_first, dropout 0) with the causal mask."""

    def forward(self, src: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        mask = nn.Transformer.generate_square_subsequent_mask(src.shape[1], dtype=src.dtype)
        return super().forward(src, src_mask=mask, is_causal=True)


class BuiltinDeepTransformer(nn.Module):
    """The stack from ``nn.TransformerEncoderLayer``: same constructor and state_dict keys."""

    def __init__(self, d_model: int = 16, nhead: int = 2, depth: int = 6,
                 norm_first: bool = True, dim_feedforward: int | None = None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            BuiltinEncoderLayer(d_model, nhead, dim_feedforward or 4 * d_model, 0.0,
                                activation="gelu", batch_first=True, norm_first=norm_first)
            for _ in range(depth))
        self.ln_f = nn.LayerNorm(d_model) if norm_first else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) if self.ln_f is not None else x


def norms(values: dict[str, np.ndarray], depth: int) -> dict[str, np.ndarray]:
    """The per-layer norms from one side's named gradients (what each twin's
    ``gradient_norms`` returns): residual where the stream's gradients are there."""
    result = {}
    streams = [values.get(f"grad.inter.stream.{layer}") for layer in range(depth + 1)]
    if all(s is not None for s in streams):
        result["norm.residual"] = np.array([np.linalg.norm(s) for s in streams])
    blocks = []
    for layer in range(depth):
        prefix = f"grad.param.blocks.{layer}."
        blocks.append(np.sqrt(sum(np.sum(np.asarray(v, np.float64) ** 2)
                                  for k, v in values.items() if k.startswith(prefix))))
    result["norm.params"] = np.array(blocks)
    return result


FD_SAMPLES = 8  # elements per tensor: a 2-block stack has 25 tensors, each element 2 forwards


def finite_differences(case: Case, trial: Trial, numpy_cls: Any = None,
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Central differences of sum(g * y) for FD_SAMPLES elements of the input and of every
    parameter, against the NumPy backward (its own draw of x and g, the case's weights)."""
    state = initial_state(case, trial, trial.rng())
    model = numpy_twin(case, state, trial, numpy_cls)
    rng = np.random.default_rng(trial.seed + 1)
    x = rng.standard_normal((N, T, C))
    g = rng.standard_normal((N, T, C))
    model(x)
    analytic = {"grad.input.x": model.backward(g)}
    analytic.update({f"grad.param.{n}": p.grad.copy() for n, p in model.named_parameters()})
    targets = {"grad.input.x": x, **{f"grad.param.{n}": p.data
                                     for n, p in model.named_parameters()}}
    objective = lambda: float(np.sum(g * model(x)))  # noqa: E731
    result = {}
    for name, array in targets.items():
        index = np.sort(rng.choice(array.size, min(FD_SAMPLES, array.size), replace=False))
        result[name] = (analytic[name].reshape(-1)[index],
                        numerical_gradient(objective, array, index))
    return result


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """The module runner (finite differences on a small sample of each tensor instead of
    the engine's 96), then each side's per-layer gradient norms."""
    outcome = run_module(case, dataclasses.replace(trial, fd=False), numpy_cls, torch_cls)
    if trial.fd and case.fd and trial.dtype == "float64":
        outcome.fd = finite_differences(case, trial, numpy_cls)
    depth = case.init["depth"]
    for side in (outcome.numpy, outcome.torch, outcome.builtin):
        if side:
            side.update({k: v.astype(trial.np_dtype) for k, v in norms(side, depth).items()})
    return outcome


def _small_perturbation(module: Any, rng: np.random.Generator) -> None:
    perturb_parameters(module, rng, scale=0.05)  # LayerNorm gains away from 1, biases from 0


def _case(depth: int, norm_first: bool) -> Case:
    # fd only at depth 2: the deeper stacks chain the same block backward
    return Case(f"{'pre' if norm_first else 'post'}-ln-depth-{depth}",
                numpy=numpy_flow.DeepTransformer, torch=torch_flow.DeepTransformer,
                builtin=BuiltinDeepTransformer, prepare=_small_perturbation,
                fd=depth == 2, init=dict(d_model=C, nhead=HEADS, depth=depth,
                                         norm_first=norm_first),
                inputs=dict(x=randn(N, T, C)))


CONCEPT = Concept(
    name="gradient_flow",
    family="advanced",
    summary="per-layer gradient norms of pre-LN and post-LN transformer stacks, depth 2 to 24",
    compares="output; grads of the input and every block's parameters; the residual stream "
             "x_0..x_L and its gradient at every layer; per-layer norms of the residual "
             "gradient and of each block's parameter gradient; pre-LN and post-LN at depths "
             "2, 6, 12, 24",
    witness="nn.TransformerEncoderLayer (norm_first, gelu, causal mask) stacked, nn.LayerNorm",
    run=run,
    bench=Bench("pre-LN and post-LN stacks of depth 24, d_model 32, 2 heads, on x (N, T, C) = "
                "(4, 8, 32)",
                cases=tuple(Case(f"bench-{'pre' if first else 'post'}-ln",
                                 numpy=numpy_flow.DeepTransformer, torch=torch_flow.DeepTransformer,
                                 builtin=BuiltinDeepTransformer, prepare=_small_perturbation,
                                 init=dict(d_model=32, nhead=2, depth=24, norm_first=first),
                                 inputs=dict(x=randn(4, 8, 32))) for first in (True, False))),
    cases=[_case(depth, norm_first) for norm_first in (True, False) for depth in DEPTHS],
)


# --- the profile and its plot ----------------------------------------------------------------
def profile(norm_first: bool, depth: int, d_model: int = 32, draws: int = 3,
            batch: int = 4, length: int = 8) -> dict[str, np.ndarray]:
    """Mean per-layer norms over ``draws`` initializations (torch's default init, loaded into
    the NumPy twin), unit-normal inputs and upstream gradients, float64: each twin's
    ``params`` and ``residual``, keys ``numpy.params``, ``torch.params``, ..."""
    total: dict[str, np.ndarray] = {}
    for draw in range(draws):
        torch.manual_seed(draw)
        twin = torch_flow.DeepTransformer(d_model, 2, depth, norm_first).double()
        mine = numpy_flow.DeepTransformer(d_model, 2, depth, norm_first).double()
        mine.load_state_dict(twin.state_dict())
        rng = np.random.default_rng(draw)
        x = rng.standard_normal((batch, length, d_model))
        g = rng.standard_normal((batch, length, d_model))
        mine(x)
        mine.backward(g)
        twin(torch.from_numpy(x).requires_grad_(True)).backward(torch.from_numpy(g))
        found = {f"numpy.{k}": v for k, v in numpy_flow.gradient_norms(mine).items()}
        found.update({f"torch.{k}": v.detach().numpy()
                      for k, v in torch_flow.gradient_norms(twin).items()})
        for k, v in found.items():
            total[k] = total.get(k, 0.0) + v / draws
    return total


def plot_profiles(path: Path, depths: tuple[int, ...] = DEPTHS) -> Path:
    """gradient_flow.png: block parameter-gradient norm by layer (top) and residual-stream
    gradient norm by layer (bottom), pre-LN left, post-LN right, one line per depth."""
    from compare.plots import new_figure, save
    fig = new_figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(2, 2, sharey="row")
    for column, norm_first in enumerate((True, False)):
        for depth in depths:
            p = profile(norm_first, depth)
            layers = np.arange(1, depth + 1)
            line, = axes[0, column].plot(layers, p["numpy.params"], label=f"depth {depth}")
            axes[0, column].plot(layers, p["torch.params"], "x", color=line.get_color())
            axes[1, column].plot(np.arange(0, depth + 1), p["numpy.residual"],
                                 color=line.get_color(), label=f"depth {depth}")
            axes[1, column].plot(np.arange(0, depth + 1), p["torch.residual"], "x",
                                 color=line.get_color())
        name = "pre-LN (norm_first=True, final LayerNorm)" if norm_first else "post-LN"
        axes[0, column].set_title(f"{name}: ||dL/d(block params)|| by layer")
        axes[1, column].set_title(f"{name}: ||dL/dx_l|| (residual stream) by layer")
        axes[0, column].set_xlabel("block l (1 = next to the input)")
        axes[1, column].set_xlabel("residual stream x_l (0 = the input)")
        for row in range(2):
            axes[row, column].set_yscale("log")
            axes[row, column].legend(fontsize=8)
    axes[0, 0].set_ylabel("gradient norm (float64, mean of 3 inits)")
    axes[1, 0].set_ylabel("gradient norm")
    fig.suptitle("Gradient flow at initialization: NumPy twin (lines) and torch twin (x), "
                 "C = 32, 2 heads, random upstream gradient")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(fig, path, dpi=110)
    return path


def extra_plots(directory: Path, seed: int) -> list[Path]:
    return [plot_profiles(Path(directory) / "gradient_flow.png")]


CONCEPT.extra_plots = extra_plots


if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
