"""Compare calibration: calibration errors, reliability diagrams and temperature scaling.

Cases, by kind:

- ``scaling``: the temperature layer z' = z / T as a module: z', dL/dz and dL/dT for a random
  upstream gradient (and finite differences);
- ``ece-*``: every calibration error (equal-width and equal-mass bins, top-label and
  classwise, L1 / L2 / max: ``ece.<strategy>.<mode>.<norm>``) and every reliability diagram
  (``bins.<strategy>.<mode>.count`` / ``.confidence`` / ``.accuracy``, (M,) or (K, M)) from the
  same probabilities: of random logits, of an over-confident MLP's test logits (many
  confidences within 1e-4 of 1, exact float32 ties among them) and fewer points than bins
  (empty bins);
- ``fit-*``: temperature scaling fitted by gradient descent on the validation NLL in both twins
  from T = 1: ``fit.temperature`` and ``fit.nll`` at every step, and on the test set the NLL
  and the ECE before and after (``before.nll``, ``after.ece``, ...).

The over-confident classifier: a 256-unit MLP (``numpy_impl.training.training_loop``'s
Classifier) trained with Adam to a training loss of ~4e-4 on 120 points of overlapping Gaussian
blobs (10 features, 4 classes): at seed 0 it is right on 68 % of new points with a mean
confidence of 0.94, an ECE of 0.26; temperature scaling (T = 4.8 after 300 steps) brings the
ECE to 0.05 and the test NLL from 2.3 to 0.8 (seeds 0-3: T from 4.8 to 8.6, ECE after 0.04 to
0.10). Its logits are data here, computed once per seed in float64 and handed to
both twins (through ``trial.cast``).

Binning is discontinuous: a score on a bin edge would fall in another bin when the twins round
differently. The ``ece-*`` cases hand both twins the same probabilities (softmax done once in
float64, then rounded to the trial's dtype), so equal scores, ranks and ties are identical on
both sides; the ``fit-*`` cases compute probabilities in each twin, before and after scaling.
Every case keeps only the points whose equal-width bins and argmax are defined with a margin
(``defined_samples``: every score at least DELTA from each edge b/M, the top two probabilities
at least DELTA apart, checked under the fitted temperature too): a few percent are dropped.

Witnesses: torchmetrics' ``multiclass_calibration_error`` for the top-label equal-width errors
(L1, L2, max) where torchmetrics is installed (it is optional: the concept runs without it; it
bins [b/M, (b+1)/M) with s = 1 in a bin of its own, equal to ours away from the edges, which
the margin guarantees, and it works in float32 whatever the input); ``F.cross_entropy`` with
``torch.optim.SGD`` for the fit (the torch twin writes the NLL as logsumexp - gather).
Extra plot (``calibration_reliability.png``): reliability diagrams before and after temperature
scaling (equal width and equal mass), and the NLL against T with both twins' descent paths.

Benchmark size: (N, K) = (10000, 10), 15 bins.

Run: ``python -m compare.evaluation.calibration``.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compare.concept import Bench, Case, Concept, Outcome, Trial, randn
from compare.data.blobs import gaussian_blobs, split
from compare.runner import run_module
from compare.tolerances import Tolerance
from numpy_impl.evaluation import calibration as numpy_twin
from numpy_impl.layers.activations import softmax
from torch_impl.evaluation import calibration as torch_twin

DELTA = 1e-4  # margin of every score from a bin edge, >> float32 rounding (~1e-6 here)
WITNESS_MARGIN = 1e-6  # confidences within this of 1 may round to 1 in float32
MLP = dict(n=900, classes=4, features=10, separation=1.0, spread=1.5, n_train=120,
           hidden=256, steps=400, lr=0.01)
HAS_TORCHMETRICS = importlib.util.find_spec("torchmetrics") is not None


# --- data ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def overconfident_logits(seed: int) -> dict[str, np.ndarray]:
    """An MLP over-fitted on a few blob points: float64 logits and labels of its validation and
    test points ({"val": (N, K), "y_val": (N,), "test": ..., "y_test": ...}), read-only."""
    from numpy_impl.layers.losses import CrossEntropyLoss
    from numpy_impl.training.optimizers import Adam
    from numpy_impl.training.training_loop import Classifier

    rng = np.random.default_rng([seed, 15])
    x, y = gaussian_blobs(rng, MLP["n"], MLP["classes"], MLP["features"], MLP["separation"],
                          MLP["spread"])
    train, val, test = split(rng, MLP["n"], val=0.35, test=0.35)
    train = train[:MLP["n_train"]]
    model = Classifier(MLP["features"], MLP["hidden"], MLP["classes"]).double()
    model.load_state_dict({k: 0.3 * rng.standard_normal(v.shape)
                           for k, v in model.state_dict().items()})
    loss_fn, optimizer = CrossEntropyLoss(), Adam(model.parameters(), lr=MLP["lr"])
    for _ in range(MLP["steps"]):  # full batch, until it has memorized the training points
        optimizer.zero_grad()
        loss_fn(model(x[train]), y[train])
        model.backward(loss_fn.backward(np.ones(())))
        optimizer.step()
    data = {"val": model(x[val]), "y_val": y[val], "test": model(x[test]), "y_test": y[test]}
    for array in data.values():
        array.setflags(write=False)
    return data


def random_logits(rng: np.random.Generator, n: int, classes: int, scale: float,
                  agreement: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits scale * N(0, 1) and labels: the argmax with probability ``agreement``, else a
    uniformly random class."""
    logits = scale * rng.standard_normal((n, classes))              # (N, K)
    guess = rng.integers(0, classes, n)
    return logits, np.where(rng.random(n) < agreement, logits.argmax(1), guess)


def defined_samples(probs: np.ndarray, n_bins: int, delta: float = DELTA) -> np.ndarray:
    """A boolean mask (N,) of the points whose equal-width bins (every score: the confidence
    and each class's probability) and argmax stay the same under any perturbation of the
    probabilities smaller than ``delta``."""
    top_two = np.sort(probs, axis=1)[:, -2:]                         # (N, 2)
    tied = top_two[:, 1] - top_two[:, 0] <= delta
    edges = np.arange(1, n_bins) / n_bins                            # the interior edges
    scores = np.concatenate([probs.max(axis=1, keepdims=True), probs], axis=1)  # (N, 1 + K)
    on_edge = (np.abs(scores[..., None] - edges).min(axis=-1) <= delta).any(axis=1)
    return ~(tied | on_edge)


def case_data(case: Case, trial: Trial) -> dict[str, np.ndarray]:
    """Float64 logits and labels of a case: "test" (and "val" for the fit cases)."""
    source = case.options["data"]
    if source == "overconfident":
        return dict(overconfident_logits(trial.seed))
    rng = trial.rng()
    if source == "random":
        logits, target = random_logits(rng, case.options["n"], case.options["classes"],
                                       case.options["scale"], case.options["agreement"])
        return {"test": logits, "y_test": target}
    # "underconfident": labels drawn from softmax(3 z), so the model's z is too soft
    half = case.options["n"]
    logits = rng.standard_normal((2 * half, case.options["classes"]))  # (2N, K)
    gumbel = -np.log(-np.log(rng.random(logits.shape)))
    target = (3.0 * logits + gumbel).argmax(1)                       # y ~ softmax(3 z)
    return {"val": logits[:half], "y_val": target[:half],
            "test": logits[half:], "y_test": target[half:]}


# --- one side's numbers ----------------------------------------------------------------------
def all_errors(module: Any, metric_cls: Any, probs: Any, target: Any, n_bins: int
               ) -> dict[str, np.ndarray]:
    """Every calibration error and reliability diagram of one twin, by name."""
    values = {}
    for strategy in module.STRATEGIES:
        for mode in module.MODES:
            for norm in module.NORMS:
                metric = metric_cls(n_bins=n_bins, norm=norm, strategy=strategy, mode=mode)
                values[f"ece.{strategy}.{mode}.{norm}"] = metric(probs, target)
            for name, array in zip(("count", "confidence", "accuracy"), metric.bins,
                                   strict=True):
                values[f"bins.{strategy}.{mode}.{name}"] = array
    return values


def as_numpy(values: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
            for k, v in values.items()}


def ece_outcome(case: Case, trial: Trial, numpy_cls: Any, torch_cls: Any) -> Outcome:
    """Every error and diagram of both twins from the same probabilities (the metric's input;
    softmax is done once, in float64, before the trial's rounding)."""
    data = case_data(case, trial)
    n_bins = case.options["n_bins"]
    probs = trial.cast(softmax(data["test"], 1))                     # (N, K)
    keep = defined_samples(probs.astype(np.float64), n_bins)
    probs, target = probs[keep], data["y_test"][keep]
    probs_t, target_t = torch.from_numpy(probs.copy()), torch.from_numpy(target.copy())
    numpy_side = all_errors(numpy_twin, numpy_cls or case.numpy, probs, target, n_bins)
    torch_side = all_errors(torch_twin, torch_cls or case.torch, probs_t, target_t, n_bins)
    outcome = Outcome(numpy=numpy_side, torch=as_numpy(torch_side),
                      inputs={"probs": probs, "target": target})
    # torchmetrics bins s = 1 apart (and rounds scores to float32): only where no confidence
    # is that close to 1 does its convention coincide with ours
    if trial.builtin and HAS_TORCHMETRICS and probs.max() < 1.0 - WITNESS_MARGIN:
        from torchmetrics.functional.classification import multiclass_calibration_error
        outcome.builtin = as_numpy({
            f"ece.uniform.top-label.{norm}": multiclass_calibration_error(
                probs_t, target_t, probs.shape[1], n_bins=n_bins, norm=norm).to(probs_t.dtype)
            for norm in ("l1", "l2", "max")})
    return outcome


# --- temperature scaling ---------------------------------------------------------------------
def builtin_fit(logits: torch.Tensor, target: torch.Tensor, lr: float, steps: int
                ) -> dict[str, torch.Tensor]:
    """The witness: T fitted with ``F.cross_entropy`` and ``torch.optim.SGD`` directly."""
    temperature = torch.nn.Parameter(torch.ones(1, dtype=logits.dtype))
    optimizer = torch.optim.SGD([temperature], lr=lr)
    temperatures, losses = [], []
    for step in range(steps + 1):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / temperature, target)
        temperatures.append(temperature.detach()[0].clone())
        losses.append(loss.detach())
        if step == steps:
            break
        loss.backward()
        optimizer.step()
    return {"temperature": torch.stack(temperatures), "nll": torch.stack(losses)}


def fit_outcome(case: Case, trial: Trial, numpy_cls: Any, torch_cls: Any) -> Outcome:
    data = {k: trial.cast(v) if k in ("val", "test") else v
            for k, v in case_data(case, trial).items()}
    lr, steps, n_bins = case.options["lr"], case.options["steps"], case.options["n_bins"]
    # the test points whose bins are defined before and after scaling (the fitted T, float64)
    reference = numpy_twin.fit_temperature(numpy_twin.TemperatureScaling().double(),
                                           data["val"].astype(np.float64), data["y_val"],
                                           lr, steps)["temperature"][-1]
    test64 = data["test"].astype(np.float64)
    keep = (defined_samples(softmax(test64, 1), n_bins)
            & defined_samples(softmax(test64 / reference, 1), n_bins))
    test, y_test = data["test"][keep], data["y_test"][keep]

    def side(module: Any, cls: Any, wrap: Any, cast: Any, probabilities: Any) -> dict:
        scaler = cast(cls(temperature=1.0))
        val, y_val, z, y = wrap(data["val"]), wrap(data["y_val"]), wrap(test), wrap(y_test)
        history = module.fit_temperature(scaler, val, y_val, lr=lr, steps=steps)
        temperature = history["temperature"][-1]
        metric = module.CalibrationError(n_bins=n_bins)
        return {"fit.temperature": history["temperature"], "fit.nll": history["nll"],
                "before.nll": module.nll(z, y), "after.nll": module.nll(z / temperature, y),
                "before.ece": metric(probabilities(z), y),
                "after.ece": metric(probabilities(z / temperature), y)}

    wrap_t = lambda a: torch.from_numpy(np.array(a))  # noqa: E731
    numpy_side = side(numpy_twin, numpy_cls or case.numpy, np.asarray,
                      lambda m: m.to(trial.np_dtype), lambda z: softmax(z, 1))
    torch_side = side(torch_twin, torch_cls or case.torch, wrap_t,
                      lambda m: m.to(dtype=trial.torch_dtype), lambda z: z.softmax(dim=1))
    outcome = Outcome(numpy=numpy_side, torch=as_numpy(torch_side),
                      inputs={"val": data["val"], "test": test})
    if trial.builtin:
        history = builtin_fit(wrap_t(data["val"]), wrap_t(data["y_val"]), lr, steps)
        z, y = wrap_t(test), wrap_t(y_test)
        cross_entropy = torch.nn.functional.cross_entropy
        outcome.builtin = as_numpy({
            "fit.temperature": history["temperature"], "fit.nll": history["nll"],
            "before.nll": cross_entropy(z, y),
            "after.nll": cross_entropy(z / history["temperature"][-1], y)})
    return outcome


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    kind = case.options.get("kind", "scaling")
    if kind == "scaling":
        return run_module(case, trial, numpy_cls, torch_cls)
    if kind == "ece":
        return ece_outcome(case, trial, numpy_cls, torch_cls)
    return fit_outcome(case, trial, numpy_cls, torch_cls)


# --- cases ------------------------------------------------------------------------------------
def _ece_case(name: str, n_bins: int, **data: Any) -> Case:
    return Case(name, numpy=numpy_twin.CalibrationError, torch=torch_twin.CalibrationError,
                options=dict(kind="ece", n_bins=n_bins, **data), prepare=None,
                # torchmetrics rounds confidences to float32 whatever the input: in float64 runs
                # it is off by up to 2.6e-7 normwise (seeds 0-20, torchmetrics 1.9.0); only
                # this witness is loosened, the twins stay at 1e-10
                tolerance={"torch-vs-builtin:float64": Tolerance(rtol=1e-6)},
                fd=False)  # binning is piecewise constant: there is no gradient to check


def _fit_case(name: str, data: str, lr: float, steps: int, **options: Any) -> Case:
    return Case(name, numpy=numpy_twin.TemperatureScaling, torch=torch_twin.TemperatureScaling,
                options=dict(kind="fit", data=data, lr=lr, steps=steps, n_bins=15, **options),
                prepare=None, fd=False)  # a descent path: compared step by step


CASES = [
    Case("scaling", numpy=numpy_twin.TemperatureScaling, torch=torch_twin.TemperatureScaling,
         init=dict(temperature=1.7), inputs=dict(logits=randn(8, 5, scale=3.0))),
    _ece_case("ece-random", 10, data="random", n=240, classes=5, scale=2.0, agreement=0.7),
    _ece_case("ece-overconfident", 15, data="overconfident"),
    _ece_case("ece-fewer-points-than-bins", 10, data="random", n=7, classes=3, scale=1.0,
              agreement=0.6),
    _fit_case("fit-overconfident", "overconfident", lr=2.0, steps=60),
    _fit_case("fit-underconfident", "underconfident", lr=0.05, steps=60, n=200, classes=5),
]

def _bench_work(trial: Trial) -> dict[str, Any]:
    """Every calibration error and reliability diagram of (N, K) = (10000, 10) probabilities
    with 15 bins, then one gradient-descent step of temperature scaling on those logits, in
    each twin (no built-in covers all of it: the ratio is against the torch twin)."""
    rng = trial.rng()
    logits, target = random_logits(rng, 10000, 10, 2.0, 0.7)
    logits = trial.cast(logits)
    probs = trial.cast(softmax(logits.astype(np.float64), 1))             # (N, K)

    def step(module: Any, wrap: Any, cast: Any) -> Any:
        z, p, y = wrap(logits), wrap(probs), wrap(target)

        def work() -> Any:
            errors = all_errors(module, module.CalibrationError, p, y, 15)
            scaler = cast(module.TemperatureScaling(temperature=1.0))
            return errors, module.fit_temperature(scaler, z, y, lr=0.1, steps=1)
        return work
    return {"numpy": step(numpy_twin, np.asarray, lambda m: m.to(trial.np_dtype)),
            "torch": step(torch_twin, lambda a: torch.from_numpy(np.array(a)),
                          lambda m: m.to(dtype=trial.torch_dtype))}


CONCEPT = Concept(
    name="calibration",
    family="evaluation",
    summary="expected calibration error, reliability diagrams and temperature scaling",
    compares=("ECE with equal-width and equal-mass bins, top-label and classwise, L1 / L2 / max, "
              "and the reliability diagrams' bins; temperature scaling's z / T and its "
              "gradients; T and the validation NLL at every gradient-descent step, test NLL and "
              "ECE before and after"),
    witness="torchmetrics multiclass_calibration_error (if installed), F.cross_entropy + "
            "torch.optim.SGD",
    run=run,
    cases=CASES,
    bench=Bench("all ECEs and reliability diagrams of (N, K) = (10000, 10) with 15 bins, "
                "plus one temperature-scaling descent step (vs the torch twin)",
                work=_bench_work),
)


# --- plots -----------------------------------------------------------------------------------
def extra_plots(directory: Path, seed: int) -> list[Path]:
    """calibration_reliability.png: reliability diagrams of the over-confident MLP before and
    after temperature scaling (equal width, equal mass), and the NLL against T with both
    twins' descent paths."""
    from compare.plots import new_figure, save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    case = CONCEPT.case("fit-overconfident")
    data = case_data(case, Trial("float64", seed=seed))
    n_bins, lr, steps = 15, case.options["lr"], 300
    numpy_path = numpy_twin.fit_temperature(numpy_twin.TemperatureScaling().double(),
                                            data["val"], data["y_val"], lr, steps)
    torch_path = torch_twin.fit_temperature(
        torch_twin.TemperatureScaling().double(), torch.from_numpy(data["val"].copy()),
        torch.from_numpy(data["y_val"].copy()), lr, steps)
    temperature = numpy_path["temperature"][-1]

    fig = new_figure(figsize=(17, 10), layout="constrained")
    axes = fig.subplots(2, 3)
    for row, strategy in enumerate(("uniform", "quantile")):
        for column, (label, t) in enumerate((("before", 1.0), ("after", temperature))):
            ax = axes[row, column]
            probs = softmax(data["test"] / t, 1)
            for module, probs_side, target, style in (
                    (numpy_twin, probs, data["y_test"], dict(color="tab:blue", alpha=0.5)),
                    (torch_twin, torch.from_numpy(probs.copy()),
                     torch.from_numpy(data["y_test"].copy()),
                     dict(fill=False, edgecolor="black", linewidth=1.2))):
                metric = module.CalibrationError(n_bins=n_bins, strategy=strategy)
                error = float(metric(probs_side, target))
                count, conf, acc = (np.asarray(b) for b in metric.bins)
                filled = count > 0
                twin = "NumPy" if module is numpy_twin else "torch"
                if strategy == "quantile":  # bins of equal mass crowd near 1: points, not bars
                    ax.plot(conf[filled], acc[filled], "o-" if twin == "NumPy" else "x",
                            color="tab:blue" if twin == "NumPy" else "black",
                            label=f"{twin}: accuracy per bin (ECE {error:.3f})")
                else:
                    ax.bar(conf[filled], acc[filled], width=0.8 / n_bins,
                           label=f"{twin}: accuracy per bin (ECE {error:.3f})", **style)
            ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
            ax.set_xlim(0, 1.04)
            ax.set_ylim(0, 1)
            ax.set_xlabel("mean confidence in the bin")
            ax.set_ylabel("accuracy in the bin")
            ax.set_title(f"{label} temperature scaling (T = {t:.2f}), "
                         f"{'equal-width' if strategy == 'uniform' else 'equal-mass'} bins",
                         fontsize=10)
            ax.legend(fontsize=8, loc="upper left")
    grid = np.linspace(0.5, 12, 200)
    curve = [float(numpy_twin.nll(data["val"] / t, data["y_val"])) for t in grid]
    ax = axes[0, 2]
    ax.plot(grid, curve, color="gray", label="validation NLL(T)")
    ax.plot(numpy_path["temperature"], numpy_path["nll"], "o", fillstyle="none",
            color="tab:blue", markersize=4, label="NumPy descent path")
    ax.plot(torch_path["temperature"].numpy(), torch_path["nll"].numpy(), "-",
            color="tab:orange", alpha=0.7, label="torch descent path")
    ax.set_xlabel("temperature T")
    ax.set_ylabel("validation NLL")
    ax.set_title(f"gradient descent on T (lr {lr:g}, {steps} steps) -> T = {temperature:.3f}",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1, 2]
    difference = np.abs(numpy_path["temperature"] - torch_path["temperature"].numpy())
    ax.semilogy(np.maximum(difference, 1e-18), color="tab:red")
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("|T numpy - T torch| (floor 1e-18)")
    ax.set_title("the twins' temperatures, float64", fontsize=10)
    fig.suptitle("Calibration of an over-fitted MLP (Gaussian blobs, 4 classes): reliability "
                 f"diagrams before and after temperature scaling, float64, seed {seed}")
    path = directory / "calibration_reliability.png"
    save(fig, path, dpi=90)
    return [path]


CONCEPT.extra_plots = extra_plots

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
