"""Compare the pairwise reward model (MLP scorer, Bradley–Terry loss): one forward and
backward, then a training run; and train it for real.

Gradient cases (the module runner): the loss on a batch of preference pairs; the scores
``inter.r_chosen`` / ``inter.r_rejected`` and their gradients; the gradients of both feature
batches and of every weight and bias; by hand vs autograd, vs central finite differences, and
vs ``BuiltinRewardModel`` (``nn.Linear``, ``torch.tanh`` and ``F.logsigmoid``: torch has no
reward-model module). Features: a margin, the three reductions, a batch of one, and score
differences of about ±100 (the loss stays finite: softplus, not the log of a sigmoid).

Training cases (``options["steps"]``): from identical weights, on identical batches drawn once
from synthetic preference pairs (``preference_data``: a hidden true reward, labels with
Bradley–Terry noise), both twins take ``steps`` optimizer steps (Adam or SGD; NumPy's
hand-written optimizers vs ``torch.optim``). Compared: the loss at every step
(``step{k}/loss``), every parameter after the last (``step{N}/param.*``) and the preference
margins r(chosen) - r(rejected) on the held-out pairs (``heldout.margin``), from which both
twins' held-out accuracy follows (the tests assert the same number in both twins, and > 90 %
after the demo's 300 steps; 50 steps reach 82 % with Adam, 90 % with SGD + momentum, seed 0).

Benchmark size: 64 pairs of 8 features, hidden width 32 (the training batch).

Run: ``python -m compare.alignment.reward_model [--steps N] [run options]``: the comparison
(``dualgrad run reward_model``), then both twins trained side by side in float32, printing loss
and held-out accuracy per step.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compare.cli.bench import numpy_loss_model_step, torch_loss_model_step, train_step_work
from compare.cli.script import comparison_then_demo
from compare.concept import Bench, Case, Concept, Outcome, Trial, perturb_parameters, randn
from compare.runner import initial_state, run_module, torch_module
from compare.runner import numpy_twin as make_numpy_twin
from compare.tolerances import Tolerance
from numpy_impl.alignment import reward_model as numpy_twin
from numpy_impl.training import optimizers as numpy_optim
from torch_impl.alignment import reward_model as torch_twin

TRUE_REWARD_SEED = 1234  # the hidden reward is one fixed function; the seed draws the pairs


class BuiltinRewardModel(nn.Module):
    """The same model (constructor, state_dict keys) from torch's built-in layers; the loss is
    ``-F.logsigmoid(d)``, Bradley–Terry as a log-likelihood."""

    def __init__(self, in_features: int = 8, hidden_features: int = 32, margin: float = 0.0,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.margin, self.reduction = margin, reduction
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, 1, bias=False)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x))).squeeze(1)

    def forward(self, chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
        losses = -F.logsigmoid(self.score(chosen) - self.score(rejected) - self.margin)
        return {"mean": losses.mean, "sum": losses.sum, "none": lambda: losses}[self.reduction]()


# --- data: preference pairs labelled by a hidden reward with Bradley–Terry noise ----------------
@dataclass
class PreferenceData:
    """Training pairs (labels noisy) and held-out pairs (ordered by the true reward)."""

    chosen: np.ndarray              # (N, D)
    rejected: np.ndarray            # (N, D)
    test_chosen: np.ndarray         # (M, D)
    test_rejected: np.ndarray       # (M, D)
    label_agreement: float          # training labels that agree with the true reward


def true_reward(x: np.ndarray) -> np.ndarray:
    """The hidden reward r*(x) = w.x + 0.5 (v.x)^2 / D: linear with a quadratic bend."""
    dim = x.shape[1]
    fixed = np.random.default_rng(TRUE_REWARD_SEED)
    w, v = fixed.standard_normal(dim), fixed.standard_normal(dim)
    return x @ w / np.sqrt(dim) + 0.5 * (x @ v) ** 2 / dim


def preference_data(n_train: int = 1024, n_test: int = 512, dim: int = 8, beta: float = 4.0,
                    seed: int = 0) -> PreferenceData:
    """Pairs (a, b) of standard normal features; the labeller prefers a with probability
    σ(beta (r*(a) - r*(b))) (Bradley–Terry noise: close calls are coin flips). Held-out pairs
    are ordered by r* itself, so accuracy measures agreement with the hidden reward."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((2, n_train + n_test, dim))
    gap = true_reward(a) - true_reward(b)
    prefers_a = rng.random(n_train + n_test) < 1.0 / (1.0 + np.exp(-beta * gap))
    prefers_a[n_train:] = gap[n_train:] > 0                 # held out: noise-free
    chosen = np.where(prefers_a[:, None], a, b)
    rejected = np.where(prefers_a[:, None], b, a)
    agreement = float(np.mean(prefers_a[:n_train] == (gap[:n_train] > 0)))
    return PreferenceData(chosen[:n_train], rejected[:n_train], chosen[n_train:],
                          rejected[n_train:], agreement)


# --- training: the same batches, each twin with its own optimizer ---------------------------------
def _train_numpy(model: Any, data: dict[str, np.ndarray], batches: np.ndarray, optimizer: str,
                 options: dict[str, Any]) -> dict[str, np.ndarray]:
    opt = getattr(numpy_optim, optimizer)(model.parameters(), **options)
    values = {}
    for k, rows in enumerate(batches, start=1):
        loss = numpy_twin.train_step(model, opt, data["chosen"][rows], data["rejected"][rows])
        values[f"step{k}/loss"] = np.asarray(loss, dtype=data["chosen"].dtype)
    for name, param in model.named_parameters():
        values[f"step{len(batches)}/param.{name}"] = param.data.copy()
    values["heldout.margin"] = model.score(data["test_chosen"]) - model.score(data["test_rejected"])
    return values


def _train_torch(model: nn.Module, data: dict[str, np.ndarray], batches: np.ndarray,
                 optimizer: str, options: dict[str, Any], device: str) -> dict[str, np.ndarray]:
    opt = getattr(torch.optim, optimizer)(model.parameters(), **options)
    t = {k: torch.from_numpy(np.array(v)).to(device) for k, v in data.items()}
    dtype = next(model.parameters()).dtype
    values = {}
    for k, rows in enumerate(batches, start=1):
        index = torch.from_numpy(rows).to(device)
        loss = model(t["chosen"][index], t["rejected"][index])
        opt.zero_grad()
        loss.backward()
        opt.step()
        values[f"step{k}/loss"] = loss.detach().to(dtype).cpu().numpy()
    for name, param in model.named_parameters():
        values[f"step{len(batches)}/param.{name}"] = param.detach().cpu().numpy().copy()
    with torch.no_grad():
        margin = model.score(t["test_chosen"]) - model.score(t["test_rejected"])
    values["heldout.margin"] = margin.cpu().numpy()
    return values


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """Gradient cases: the module runner. Training cases: ``steps`` steps of ``optimizer`` on
    batches of ``batch`` pairs drawn once; the held-out margins after the last step."""
    options = case.options
    if "steps" not in options:
        return run_module(case, trial, numpy_cls, torch_cls)
    rng = trial.rng()
    state = initial_state(case, trial, rng)
    pairs = preference_data(options["n_train"], options["n_test"], case.init["in_features"],
                            seed=trial.seed)
    data = {k: trial.cast(getattr(pairs, k))
            for k in ("chosen", "rejected", "test_chosen", "test_rejected")}
    batches = rng.integers(0, options["n_train"], size=(options["steps"], options["batch"]))
    optimizer, opt_options = options["optimizer"], options["optimizer_options"]
    outcome = Outcome(
        numpy=_train_numpy(make_numpy_twin(case, state, trial, numpy_cls), data, batches,
                           optimizer, opt_options),
        torch=_train_torch(torch_module(torch_cls or case.torch, case, state, trial), data,
                           batches, optimizer, opt_options, trial.device))
    if trial.builtin and case.builtin is not None:
        outcome.builtin = _train_torch(torch_module(case.builtin, case, state, trial), data,
                                       batches, optimizer, opt_options, trial.device)
    return outcome


# --- cases -------------------------------------------------------------------------------------
def _scores_of_100(module: nn.Module, rng: np.random.Generator) -> None:
    """fc2's weight and bias scaled so that score differences are about ±100 (both signs):
    softplus(-d) is then ~100 or ~e^-100, the regime where log(σ(d)) breaks down."""
    perturb_parameters(module, rng)
    shape = tuple(module.fc2.weight.shape)
    module.fc2.weight.copy_(torch.from_numpy(rng.choice([-60.0, 60.0], size=shape)))


def _case(name: str, n: int, dim: int = 4, hidden: int = 5, prepare: Any = None,
          scale: float = 1.0, tolerance: Any = None, **init: Any) -> Case:
    kwargs = {} if prepare is None else {"prepare": prepare}
    kwargs |= {} if tolerance is None else {"tolerance": tolerance}
    return Case(name, numpy=numpy_twin.RewardModel, torch=torch_twin.RewardModel,
                builtin=BuiltinRewardModel,
                init=dict(in_features=dim, hidden_features=hidden) | init,
                inputs=dict(chosen=randn(n, dim, scale=scale), rejected=randn(n, dim, scale=scale)),
                **kwargs)


def _training(name: str, optimizer: str, steps: int = 50, **optimizer_options: Any) -> Case:
    # fd=False: a training run has no single backward to difference; the gradient cases check
    # the same backward against finite differences. prepare=None: the twin's own init.
    return Case(name, numpy=numpy_twin.RewardModel, torch=torch_twin.RewardModel,
                builtin=BuiltinRewardModel, init=dict(in_features=8, hidden_features=32),
                prepare=None, fd=False,
                options=dict(steps=steps, batch=64, n_train=1024, n_test=512,
                             optimizer=optimizer, optimizer_options=optimizer_options))


CONCEPT = Concept(
    name="reward_model",
    family="alignment",
    summary="pairwise reward model: MLP scorer r(x), Bradley–Terry loss -log σ(r(chosen) - "
            "r(rejected) - margin)",
    compares="loss; scores of chosen and rejected and their grads; grads of both feature "
             "batches and every weight and bias (margin, mean/sum/none, score differences of "
             "±100); 50 training steps (Adam, SGD) on synthetic preference pairs: loss per "
             "step, parameters at the end, held-out margins (after 300 steps, accuracy > 90 % in "
             "both twins)",
    witness="nn.Linear, torch.tanh, F.logsigmoid; torch.optim",
    run=run,
    bench=Bench("one Adam update step of the reward model (8 -> 32 -> 1) on 64 preference pairs",
                work=train_step_work(
                    (numpy_twin.RewardModel, None, numpy_optim.Adam, numpy_loss_model_step),
                    (torch_twin.RewardModel, None, torch.optim.Adam, torch_loss_model_step),
                    (BuiltinRewardModel, None, torch.optim.Adam, torch_loss_model_step),
                    dict(in_features=8, hidden_features=32), randn(64, 8), randn(64, 8),
                    dict(lr=1e-2))),
    cases=[
        _case("pairs", 6),
        _case("margin", 6, margin=0.5),
        _case("sum", 5, reduction="sum"),
        _case("none", 5, reduction="none"),
        # One pair: each score is one number, so its normwise error is its relative error, and
        # a score that lands near 0 (4.2e-4 at seed 40) keeps the absolute rounding of its sum
        # of products, up to 1.0e-7 in float32 over seeds 0-49 (1.07e-4 of that score). An
        # absolute floor 10x that, for the two scores in float32.
        _case("batch-of-one", 1, tolerance={
            f"float32:inter.{score}": Tolerance(rtol=1e-4, atol=1e-6)
            for score in ("r_chosen", "r_rejected")}),
        # Where every pair's score difference d is above ~88 (seed 582), every gradient is
        # sigma(-d) < 1e-38, below float32's smallest normal number: NumPy's sigmoid returns 0
        # there (e^d overflows), torch a denormal (~1e-44), and denormals keep a few bits. A
        # float32 floor at the smallest normal number compares what float32 represents; any
        # gradient a backward gets wrong is far above it.
        _case("scores-of-100", 6, prepare=_scores_of_100, scale=2.0,
              tolerance={"float32": Tolerance(rtol=1e-4,
                                              atol=float(np.finfo(np.float32).tiny))}),
        _training("train-adam", "Adam", lr=1e-2),
        _training("train-sgd", "SGD", lr=0.5, momentum=0.9),
    ],
)


# --- the demo: both twins trained side by side ------------------------------------------------
def train_side_by_side(steps: int = 300, batch: int = 64, lr: float = 1e-2, seed: int = 0,
                       every: int = 25, out: TextIO = sys.stdout) -> dict[str, np.ndarray]:
    """Both twins in float32 from the same init with Adam on the same batches; loss per step
    and held-out accuracy every ``every`` steps, side by side."""
    pairs = preference_data(seed=seed)
    data = {k: getattr(pairs, k).astype(np.float32)
            for k in ("chosen", "rejected", "test_chosen", "test_rejected")}
    torch_data = {k: torch.from_numpy(v) for k, v in data.items()}
    torch.manual_seed(seed)
    torch_model = torch_twin.RewardModel()
    numpy_model = numpy_twin.RewardModel()
    numpy_model.load_state_dict(torch_model.state_dict())
    numpy_opt = numpy_optim.Adam(numpy_model.parameters(), lr=lr)
    torch_opt = torch.optim.Adam(torch_model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    curves = {k: [] for k in ("step", "loss_numpy", "loss_torch", "acc_step", "acc_numpy",
                              "acc_torch")}
    print(f"training both twins (float32, Adam lr={lr:g}, batches of {batch} pairs): "
          f"{len(data['chosen'])} training pairs ({pairs.label_agreement:.1%} of their labels "
          f"agree with the hidden reward), {len(data['test_chosen'])} held out", file=out)
    print(f"{'step':>5}  {'loss numpy':>10}  {'loss torch':>10}  {'acc numpy':>9}  "
          f"{'acc torch':>9}", file=out)
    for step in range(0, steps + 1):
        if step > 0:
            rows = rng.integers(0, len(data["chosen"]), batch)
            curves["step"].append(step)
            curves["loss_numpy"].append(numpy_twin.train_step(
                numpy_model, numpy_opt, data["chosen"][rows], data["rejected"][rows]))
            curves["loss_torch"].append(torch_twin.train_step(
                torch_model, torch_opt, torch_data["chosen"][rows], torch_data["rejected"][rows]))
        if step % every == 0 or step == steps:
            curves["acc_step"].append(step)
            curves["acc_numpy"].append(numpy_twin.preference_accuracy(
                numpy_model, data["test_chosen"], data["test_rejected"]))
            curves["acc_torch"].append(torch_twin.preference_accuracy(
                torch_model, torch_data["test_chosen"], torch_data["test_rejected"]))
            loss_n = f"{curves['loss_numpy'][-1]:10.6f}" if step else f"{'':>10}"
            loss_t = f"{curves['loss_torch'][-1]:10.6f}" if step else f"{'':>10}"
            print(f"{step:>5}  {loss_n}  {loss_t}  {curves['acc_numpy'][-1]:9.4f}  "
                  f"{curves['acc_torch'][-1]:9.4f}", file=out)
    return {k: np.asarray(v) for k, v in curves.items()}


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """reward_model_loss.png and reward_model_accuracy.png: both twins' curves, and their
    difference."""
    import io

    from compare.plots import plot_curves
    curves = train_side_by_side(steps=200, seed=seed, every=10, out=io.StringIO())
    return [
        plot_curves(Path(directory) / "reward_model_loss.png",
                    "reward model: Bradley–Terry training loss, the same batches",
                    curves["step"], curves["loss_numpy"], curves["loss_torch"],
                    xlabel="Adam step (64 pairs)", ylabel="loss", dtype="float32"),
        plot_curves(Path(directory) / "reward_model_accuracy.png",
                    "reward model: held-out preference accuracy (vs the hidden reward)",
                    curves["acc_step"], curves["acc_numpy"], curves["acc_torch"],
                    xlabel="Adam step (64 pairs)", ylabel="accuracy", dtype="float32"),
    ]


CONCEPT.extra_plots = extra_plots


def script(argv: Sequence[str] | None = None) -> int:
    """``python -m compare.alignment.reward_model [--steps N] [run options]``: the comparison, then
    the training demo (300 steps by default). Returns the comparison's exit code."""
    return comparison_then_demo(CONCEPT.name, train_side_by_side, "steps", 300, argv)


if __name__ == "__main__":
    raise SystemExit(script())
