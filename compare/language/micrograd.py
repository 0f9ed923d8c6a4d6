"""Compare micrograd's ``Value`` with autograd on 0-d tensors, on expression graphs and on a
tiny MLP trained for a few SGD steps.

Graphs. An expression graph is a small program: leaves x0, x1, ... and a list of operations,
each reading earlier nodes by index. The same program runs on micrograd Values and on 0-d
torch tensors (the operators and ``.relu() .tanh() .exp() .log() .sigmoid()`` are the same
methods on both). Random graphs come from the trial's Generator and are built to stress the
engine's bookkeeping: operands are often "hub" nodes used many times, sub-expressions are
shared, numbers appear on either side of every operator, and ``+=`` rebinds a node (in torch:
an in-place add). Each operation is only chosen where it is smooth and well-conditioned (log
of values > 0.2, no relu within 0.01 of its kink, |values| <= 50), so both dtypes and finite
differences see the same function. Compared: the output, every leaf's gradient by name
(``grad.x0``, ...), every node's value (``node.data``) and gradient (``node.grad``; torch
keeps them with ``retain_grad``). Two fixed graphs are micrograd's own tests (known answers
in tests/language/test_micrograd.py).

MLP. ``MLP(nin, nouts)`` of Neurons trained for a few steps of ``p.data += -lr * p.grad`` on
a handful of examples: the training loop is written once and runs on both twins. Compared per
step: the loss, every weight's gradient and every weight after the update, gathered per layer
as (nout, nin + 1) matrices [w | b] (the nn.Linear layout plus the bias column). Witness: the
same network as ``nn.Linear`` layers trained by ``torch.optim.SGD`` (batched, so its sums run
in another order). Finite differences check the first step's gradients.

float32: micrograd computes in the dtype of its numbers; Values holding np.float32 stay
float32, as 0-d float32 tensors do, so the float32 run is a real one (refereed by float64).

Split by job: ``compare.support.micrograd_graphs`` (graphs as programs, random ones, node uses),
``micrograd_mlp`` (the training loop and its witness), ``micrograd_plots`` (drawing a graph);
this file runs both twins on them and declares the concept.

Benchmark size: one SGD step of micrograd's demo MLP(2, [16, 16, 1]) on 100 points.

Run: ``python -m compare.language.micrograd``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compare.concept import Bench, Case, Concept, Outcome, Trial
from compare.finite_diff import numerical_gradient
from compare.support.micrograd_graphs import (  # noqa: F401 -- the graphs, reachable here
    MORE_OPS,
    SANITY,
    Graph,
    _operand_mask,
    execute,
    random_graph,
    uses,
)
from compare.support.micrograd_mlp import _mlp_fd, mlp_loss, train_builtin, train_micrograd
from compare.support.micrograd_plots import graph_drawing
from compare.tolerances import FINITE_DIFFERENCE, Tolerance
from numpy_impl.language import micrograd as numpy_twin
from torch_impl.language import micrograd as torch_twin


# --- running a graph on both twins ------------------------------------------------------------
def _graph_for(case: Case, trial: Trial) -> Graph:
    if "graph" in case.options:
        return case.options["graph"]
    options = case.options
    return random_graph(trial.rng(), options["leaves"], options["ops"], options["reuse"])


def numpy_graph(graph: Graph, leaves: np.ndarray, value_cls: Any = None) -> dict[str, Any]:
    """Forward and ``backward()`` with micrograd Values; every named value."""
    value_cls = value_cls or numpy_twin.Value
    leaf_values = [value_cls(x) for x in leaves]  # NumPy scalars: their dtype is the compute dtype
    nodes = execute(graph, leaf_values)
    root = nodes[graph.root]
    root.backward()
    out = {"out": np.asarray(root.data)}
    out.update({f"grad.x{k}": np.asarray(v.grad) for k, v in enumerate(leaf_values)})
    out["node.data"] = np.array([n.data for n in nodes])
    out["node.grad"] = np.array([n.grad for n in nodes])
    return out


def torch_graph(graph: Graph, leaves: np.ndarray, trial: Trial,
                value_cls: Any = None) -> dict[str, Any]:
    """The same program on 0-d tensors; ``retain_grad`` keeps the intermediates' gradients.
    ``value_cls(x, dtype=...)`` makes a leaf (a user's in place of the twin's ``Value``)."""
    import torch
    value_cls = value_cls or torch_twin.Value
    leaf_tensors = [value_cls(float(x), dtype=trial.torch_dtype) for x in leaves]
    nodes = execute(graph, leaf_tensors)
    for node in nodes:
        if not node.is_leaf:
            node.retain_grad()
    nodes[graph.root].backward()

    def grad(t: Any) -> float:  # a node the output does not depend on has no grad: 0
        return 0.0 if t.grad is None else t.grad.item()
    out = {"out": nodes[graph.root].detach().numpy()}
    out.update({f"grad.x{k}": np.asarray(grad(t), dtype=trial.np_dtype)
                for k, t in enumerate(leaf_tensors)})
    out["node.data"] = torch.stack([n.detach() for n in nodes]).numpy()
    out["node.grad"] = np.array([grad(n) for n in nodes], dtype=trial.np_dtype)
    return out


def _graph_fd(graph: Graph, leaves: np.ndarray, analytic: dict[str, Any],
              value_cls: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Central differences of the output with respect to every leaf (float64)."""
    value_cls = value_cls or numpy_twin.Value
    point = np.array(leaves, dtype=np.float64)
    loss = lambda: float(execute(graph, [value_cls(x) for x in point])[graph.root].data)  # noqa: E731
    numeric = numerical_gradient(loss, point)
    return {f"grad.x{k}": (np.asarray(analytic[f"grad.x{k}"]), np.asarray(numeric[k]))
            for k in range(len(point))}


def run_graph(case: Case, trial: Trial, numpy_cls: Any = None,
              torch_cls: Any = None) -> Outcome:
    graph = _graph_for(case, trial)
    leaves = trial.cast(np.array(graph.leaves))
    numpy_values = numpy_graph(graph, leaves.copy(), numpy_cls or case.numpy)
    node_uses, leaf_uses = uses(graph)
    outcome = Outcome(numpy=numpy_values,
                      torch=torch_graph(graph, leaves.copy(), trial, torch_cls or case.torch),
                      inputs={"leaves": leaves},
                      contributions={"node.grad": node_uses,
                                     **{f"grad.x{k}": np.asarray(n)
                                        for k, n in enumerate(leaf_uses)}})
    if trial.fd and case.fd and trial.dtype == "float64":
        outcome.fd = _graph_fd(graph, leaves, numpy_values, numpy_cls)
    return outcome


# --- the MLP, trained on both twins -----------------------------------------------------------
def run_mlp(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    import torch
    rng = trial.rng()
    torch.manual_seed(trial.seed)
    reference = case.torch(**case.init).to(torch.float64)  # the torch twin initializes itself
    state = {k: trial.cast(v.detach().numpy().copy()) for k, v in reference.state_dict().items()}
    n, nin = case.options["examples"], case.init["nin"]
    X = trial.cast(rng.uniform(-1.0, 1.0, (n, nin)))  # (n, nin)
    y = trial.cast(rng.choice([-1.0, 1.0], n))  # (n,) targets / labels
    twin = (torch_cls or case.torch)(**case.init).to(trial.torch_dtype)
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    mine = (numpy_cls or case.numpy)(**case.init)
    mine.to(trial.np_dtype)
    mine.load_state_dict(state)
    outcome = Outcome(
        numpy=train_micrograd(mine, X, y, case.options, trial.np_dtype),
        torch=train_micrograd(twin, torch.from_numpy(X), torch.from_numpy(y), case.options,
                              trial.np_dtype),
        inputs={"X": X, "y": y})
    if trial.builtin:
        outcome.builtin = train_builtin(state, X, y, case, trial)
    if trial.fd and case.fd and trial.dtype == "float64":
        outcome.fd = _mlp_fd(case, state, X, y, outcome.numpy, numpy_cls)
    return outcome


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """Graph cases run a program on Values and tensors; MLP cases train both twins."""
    if case.options["kind"] == "graph":
        return run_graph(case, trial, numpy_cls, torch_cls)
    return run_mlp(case, trial, numpy_cls, torch_cls)


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """micrograd_graph.png: micrograd's test expression drawn with every node's data and
    grad; micrograd_random_graph.png: a small random graph of this seed; micrograd_mlp.png:
    both twins' training losses."""
    from compare.plots import plot_curves
    directory = Path(directory)
    paths = [
        graph_drawing(MORE_OPS, directory / "micrograd_graph.png",
                       "micrograd's test expression g(a=-4, b=2): op, data, grad = dg/dnode "
                       "(float64; yellow = leaves and constants, blue = output)"),
        graph_drawing(random_graph(np.random.default_rng(seed), 3, 8, 0.5),
                       directory / "micrograd_random_graph.png",
                       f"a random expression graph (seed {seed}, float64): op, data, grad"),
    ]
    case = CONCEPT.case("mlp-tanh")
    outcome = run_mlp(case, Trial("float64", seed=seed, builtin=False, fd=False))
    steps = np.arange(case.options["steps"])
    losses = [np.array([o[f"step{k}/loss"] for k in steps]) for o in (outcome.numpy,
                                                                      outcome.torch)]
    paths.append(plot_curves(directory / "micrograd_mlp.png",
                             "micrograd MLP(3, [4, 4, 1]), sum of squared errors, SGD",
                             steps, losses[0], losses[1], xlabel="SGD step", ylabel="loss",
                             dtype="float64"))
    return paths


# Random graphs are compositions of up to hundreds of operations whose conditioning nothing
# bounds: a final sum or a leaf's gradient may cancel to 1/100 of its terms. The twins' tanh,
# exp, log and pow differ by an ulp, and cancellation amplifies that: the float32 twins differ
# by up to 3.5e-4 relative on a scalar over seeds 0-999 (seed 323, a leaf gradient of 0.05;
# the next worst 8.1e-5), each as far from the float64 referee as the other: 1e-3 for the
# twins (graphs have no built-in witness) -- a wrong rule is off by O(1). Finite differences of a
# 0-d gradient are measured against that gradient alone, so a leaf gradient that cancels to
# ~1e-3 sees the differences' rounding error eps |L| / h ~ 1e-8 relative to |L| ~ 100
# undiluted: an absolute 1e-6 floor (largest error seen over seeds 0-59: 3.3e-6 on a
# gradient of ~1e2, inside its relative part), again far below any wrong rule.
# A leaf's gradient, a 0-d tensor compared alone, can cancel to rounding: 3e-17 (float64, x0
# at seed 494) and 9e-16 (x2 at seed 890) from terms of ~1e2, where the twins differ by 2x
# their own size; in float32 a leaf gradient is exactly 0 in one twin (seeds 616, 664, 890)
# or 1.2e-3 with 1.8e-3 relative difference (hubs, seed 951). Absolute floors on the leaves,
# 5x the largest difference on any leaf gradient of the random and hub graphs over seeds
# 0-999 (2.3e-13 float64, 3.1e-4 float32, on gradients of ~1e2-1e3). (The deep graphs have
# their own floors, below.)
_LEAF_FLOORS = {f"numpy-vs-torch:{dtype}:grad.x{leaf}": Tolerance(rtol=rtol, atol=atol)
                for leaf in range(4)
                for dtype, rtol, atol in (("float64", 1e-10, 1.2e-12), ("float32", 1e-3, 1.5e-3))}
RANDOM_GRAPH_TOLERANCE = {"numpy-vs-torch:float32": Tolerance(rtol=1e-3),
                          "fd": Tolerance(rtol=FINITE_DIFFERENCE.rtol, atol=1e-6)}


def _graph_case(name: str, tolerance: dict[str, Tolerance] | None = None,
                **options: Any) -> Case:
    random = "graph" not in options
    return Case(name, numpy=numpy_twin.Value, torch=torch_twin.Value, prepare=None,
                options=dict(kind="graph", **options),
                tolerance=(RANDOM_GRAPH_TOLERANCE if random else {}) | (tolerance or {}))


def _mlp_case(name: str, nouts: list[int], activation: str, **options: Any) -> Case:
    return Case(name, numpy=numpy_twin.MLP, torch=torch_twin.MLP, prepare=None,
                init=dict(nin=3, nouts=nouts, activation=activation),
                options=dict(kind="mlp", examples=4, steps=4, **options))


BENCH_MLP = dict(nin=2, nouts=[16, 16, 1], activation="relu")
BENCH_OPTIONS = dict(loss="hinge", alpha=1e-4, lr=0.1)


def _bench_work(trial: Trial) -> dict[str, Any]:
    """One SGD step of micrograd's demo network, MLP(2, [16, 16, 1]) with ReLU, on 100
    points: forward of every point, the hinge loss + L2, zero_grad, backward, the update;
    the two twins train on from the same weights. No built-in: nn.Linear batches the
    points, a different computation, so the ratio is against the torch twin."""
    import torch
    rng = trial.rng()
    torch.manual_seed(trial.seed)
    reference = torch_twin.MLP(**BENCH_MLP).to(torch.float64)
    state = {k: trial.cast(v.detach().numpy().copy()) for k, v in reference.state_dict().items()}
    X = trial.cast(rng.uniform(-1.0, 1.0, (100, 2)))             # (n, nin)
    y = trial.cast(rng.choice([-1.0, 1.0], 100))                  # (n,) labels
    mine = numpy_twin.MLP(**BENCH_MLP)
    mine.to(trial.np_dtype)
    mine.load_state_dict(state)
    twin = torch_twin.MLP(**BENCH_MLP).to(trial.torch_dtype)
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})

    def step(model: Any, inputs: Any, targets: Any) -> Any:
        def sgd() -> Any:
            scores = [model(x) for x in inputs]
            loss = mlp_loss(scores, list(targets), model.parameters(), BENCH_OPTIONS)
            model.zero_grad()
            loss.backward()
            for p in model.parameters():
                p.data += -BENCH_OPTIONS["lr"] * p.grad
            return loss
        return sgd
    return {"numpy": step(mine, X, y),
            "torch": step(twin, torch.from_numpy(X), torch.from_numpy(y))}


CONCEPT = Concept(
    name="micrograd",
    family="language",
    summary="a scalar reverse-mode autograd engine (Value) and an MLP of Values vs autograd "
            "on 0-d tensors",
    compares="expression graphs (micrograd's tests; random ones with hubs, shared "
             "sub-expressions, numbers on either side, +=): output, every leaf's grad, every "
             "node's data and grad; MLP(3, [4, 4, 1]) trained 4 SGD steps (tanh + squared "
             "error, relu + hinge + L2): loss, grads and weights per step; witness nn.Linear "
             "+ torch.optim.SGD",
    witness="nn.Linear + torch.optim.SGD (MLP cases)",
    run=run,
    bench=Bench("one SGD step of MLP(2, [16, 16, 1]) (ReLU, hinge + L2) on 100 points, "
                "micrograd's demo (vs the torch twin)", work=_bench_work),
    extra_plots=extra_plots,
    cases=[
        _graph_case("sanity", graph=SANITY),
        _graph_case("more-ops", graph=MORE_OPS),
        _graph_case("random", leaves=4, ops=40, reuse=0.3, tolerance=_LEAF_FLOORS),
        # a few nodes used dozens of times
        _graph_case("hubs", leaves=3, ops=60, reuse=0.7, tolerance=_LEAF_FLOORS),
        # long chains of recent nodes. A leaf's gradient can cancel to exactly 0 (x0 at seed
        # 442) while its terms are ~1e3: the twins then give rounding, +-3.6e-15 in float64 and
        # 1.9e-6 in float32. Absolute floors 5x the largest difference seen on any x0 over
        # seeds 0-499 (4.6e-12 float64, 5.6e-3 float32, on gradients of ~1e3).
        _graph_case("deep", leaves=2, ops=300, reuse=0.05,
                    tolerance={"numpy-vs-torch:float64": Tolerance(rtol=1e-10, atol=2.5e-11),
                               "numpy-vs-torch:float32": Tolerance(rtol=1e-3, atol=3e-2)}),
        _mlp_case("mlp-tanh", [4, 4, 1], "tanh", loss="mse", lr=0.05),
        _mlp_case("mlp-relu", [4, 4, 1], "relu", loss="hinge", lr=0.1, alpha=1e-3),
    ],
)

def print_losses(steps: int = 20, seed: int = 0) -> None:
    """Both twins' losses side by side while MLP(3, [4, 4, 1]) trains (float64)."""
    base = CONCEPT.case("mlp-tanh")
    case = Case(base.name, numpy=base.numpy, torch=base.torch, init=base.init,
                options={**base.options, "steps": steps})
    outcome = run_mlp(case, Trial("float64", seed=seed, builtin=False, fd=False))
    print(f"micrograd MLP(3, [4, 4, 1]), tanh, sum of squared errors, SGD lr "
          f"{case.options['lr']}, 4 examples, float64")
    print(f"{'step':>5} {'numpy loss':>16} {'torch loss':>16} {'|difference|':>13}")
    for k in range(steps):
        a, b = float(outcome.numpy[f"step{k}/loss"]), float(outcome.torch[f"step{k}/loss"])
        print(f"{k:>5} {a:>16.12f} {b:>16.12f} {abs(a - b):>13.2e}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m compare.language.micrograd [--steps N] [run options]``: the table, then
    both twins' training losses."""
    import argparse

    from compare.cli import main as cli_main
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--steps", type=int, default=20, help="training steps to print (20)")
    known, rest = parser.parse_known_args(argv)
    code = cli_main(["run", CONCEPT.name, *rest])
    if "--json" not in rest and "-h" not in rest and "--help" not in rest and code != 2:
        print()
        print_losses(steps=known.steps)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
