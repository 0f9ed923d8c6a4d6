r"""Compare weight initialization: distributions, not bits.

Two random number generators cannot agree bit for bit, so each twin fills a large tensor and
the comparison tests that both samples come from the same distribution -- the exact target
that ``torch.nn.init`` documents (U(-b, b) or N(0, s^2), ``target``). Per tensor three named
statistics, each twin's own, compared with an absolute tolerance equal to the test's critical
value, so that ``max|numpy - torch| <= atol`` *is* the two-sample test:

    <param>/ecdf           F_n(q_k), the empirical CDF at the target's percentiles
                           q_k = F^{-1}(k / 100), k = 1..99; max_k |F_np - F_torch| is the
                           two-sample Kolmogorov-Smirnov statistic restricted to the grid
    <param>/mean           sample mean / sigma                    (target 0)
    <param>/second_moment  mean(w^2) / sigma^2                    (target 1)

The critical values are finite-sample bounds, not asymptotics: with n draws from the target,

    KS     P(sup |F_n - F| > e) <= 2 exp(-2 n e^2)                Dvoretzky-Kiefer-Wolfowitz
                                                                  (Massart's constant)
    mean   normal: P(|mean/s| > u) <= 2 exp(-n u^2 / 2)           Chernoff
           uniform (|w| <= sqrt(3) sigma):
                   P(|mean/sigma| > u) <= 2 exp(-n u^2 / (2 + 2 sqrt(3) u / 3))    Bernstein
    second normal: n mean(w^2)/s^2 ~ chi2_n; P(|chi2_n/n - 1| > (2 sqrt(n L) + 2 L)/n)
    moment         <= 2 e^{-L}                                    Laurent-Massart
           uniform (w^2/sigma^2 in [0, 3], variance 4/5):
                   P(|m2 - 1| > u) <= 2 exp(-n u^2 / (8/5 + 4 u / 3))             Bernstein

Each twin's deviation is bounded at level alpha_test / 2, so |numpy - torch| <= the sum of the
two bounds fails with probability <= alpha_test when both twins draw from the target. Every
full run (all cases, float64 and float32) makes ``N_TESTS`` such comparisons with
alpha_test = ``FALSE_ALARM_RATE`` / N_TESTS each: by the union bound (Bonferroni) a correct pair
of twins fails a run with probability <= 1e-3. ``benchmarks/weight_init_false_alarms.py``
counts failures over 1,000 seeds. ``target_ratios`` also tests one sample against the exact
target (statistic / critical value, <= 1 passes): the tests use it on each twin.

Witness: ``torch.nn.init`` (``nn.Linear`` / ``nn.Conv2d`` for the default scheme) from the same
torch seed: bitwise the torch twin's tensor, hence its statistics exactly. One more case
compares ``calculate_gain`` for every nonlinearity and the fans of 2-, 3- and 4-d weights,
exactly. The extra plot (``weight_init_tanh_mlp.png``) shows why initialization matters: the
activation and gradient histograms, layer by layer, of a 6 x 100 tanh MLP.

Benchmark size: one init of a 1024 x 1024 layer (nn.Linear's default, kaiming_normal_).

Run: ``python -m compare.training.weight_init``.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import torch
from torch import nn

from compare.concept import Bench, Case, Concept, Outcome, Trial
from compare.tolerances import Tolerance
from numpy_impl import random as numpy_random
from numpy_impl.training import weight_init as numpy_twin
from torch_impl.training import weight_init as torch_twin

FALSE_ALARM_RATE = 1e-3          # per full run of the concept, all cases, both dtypes
GRID = np.arange(1, 100) / 100.0  # target probabilities of the ECDF grid
DTYPES = ("float64", "float32")


# --- the exact target distribution, from the documented formulas --------------------------------
@dataclass(frozen=True)
class Target:
    """U(-scale, scale) ("uniform") or N(0, scale^2) ("normal")."""

    kind: str
    scale: float

    @property
    def sigma(self) -> float:
        return self.scale / math.sqrt(3.0) if self.kind == "uniform" else self.scale

    def cdf(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "uniform":
            return np.clip((x + self.scale) / (2.0 * self.scale), 0.0, 1.0)
        dist = NormalDist(0.0, self.scale)
        return np.vectorize(dist.cdf)(x)

    def quantiles(self, p: np.ndarray) -> np.ndarray:
        if self.kind == "uniform":
            return self.scale * (2.0 * p - 1.0)
        dist = NormalDist(0.0, self.scale)
        return np.array([dist.inv_cdf(float(q)) for q in p])


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def target(shape: tuple[int, ...], scheme: str, param: str = "weight",
           **options: Any) -> Target:
    """The distribution torch.nn.init documents for ``param`` (gains from nn.init)."""
    fan_in, fan_out = _fans(shape)
    if scheme == "default":  # nn.Linear / nn.Conv2d: weight and bias U(+-1/sqrt(fan_in))
        return Target("uniform", 1.0 / math.sqrt(fan_in))
    kind = scheme.split("_")[1]
    if scheme.startswith("xavier"):
        std = options.get("gain", 1.0) * math.sqrt(2.0 / (fan_in + fan_out))
    else:
        fan = fan_in if options.get("mode", "fan_in") == "fan_in" else fan_out
        gain = nn.init.calculate_gain(options.get("nonlinearity", "leaky_relu"),
                                      options.get("a", 0))
        std = gain / math.sqrt(fan)
    return Target(kind, math.sqrt(3.0) * std if kind == "uniform" else std)


# --- statistics and their finite-sample critical values -----------------------------------------
def statistics(sample: np.ndarray, dist: Target) -> dict[str, np.ndarray]:
    """ECDF on the percentile grid, standardized mean and second moment (float64)."""
    x = np.asarray(sample, dtype=np.float64).reshape(-1)
    q = dist.quantiles(GRID)                                   # (99,)
    # #{x <= q_k} for every k at once: the grid cell of each draw, then a running count
    cells = np.searchsorted(q, x, side="left")                 # x <= q_k  <=>  cell <= k
    ecdf = np.cumsum(np.bincount(cells, minlength=len(q) + 1))[:len(q)] / x.size
    return {"ecdf": ecdf,
            "mean": np.array(x.mean() / dist.sigma),
            "second_moment": np.array(np.mean(x * x) / dist.sigma ** 2)}


def critical_values(n: int, kind: str, alpha: float) -> dict[str, float]:
    """One-sample bounds: each statistic's deviation from its target exceeds these with
    probability <= alpha (under the target distribution), for any n."""
    log_term = math.log(2.0 / alpha)                           # 2 e^{-L} = alpha
    ks = math.sqrt(log_term / (2.0 * n))
    if kind == "normal":
        mean = math.sqrt(2.0 * log_term / n)
        second = (2.0 * math.sqrt(n * log_term) + 2.0 * log_term) / n
    else:  # Bernstein: n u^2 = L (v2 + c u) solved for u > 0
        c = 2.0 * math.sqrt(3.0) / 3.0
        mean = (log_term * c + math.sqrt((log_term * c) ** 2 + 8.0 * n * log_term)) / (2.0 * n)
        c, v2 = 4.0 / 3.0, 8.0 / 5.0
        second = (log_term * c + math.sqrt((log_term * c) ** 2 + 4.0 * n * log_term * v2)) \
            / (2.0 * n)
    return {"ecdf": ks, "mean": mean, "second_moment": second}


def target_ratios(sample: np.ndarray, dist: Target, alpha: float) -> dict[str, float]:
    """One sample against the exact target: each statistic's deviation / critical value
    (exact CDF at the grid for the ECDF); > 1 rejects with false-alarm rate <= alpha each."""
    return ratios_from_statistics(statistics(sample, dist), np.size(sample), dist.kind, alpha)


def ratios_from_statistics(stats: dict[str, np.ndarray], n: int, kind: str,
                           alpha: float) -> dict[str, float]:
    """``target_ratios`` from the statistics of a sample of size n."""
    bounds = critical_values(n, kind, alpha)
    return {"ecdf": float(np.max(np.abs(stats["ecdf"] - GRID))) / bounds["ecdf"],
            "mean": abs(float(stats["mean"])) / bounds["mean"],
            "second_moment": abs(float(stats["second_moment"]) - 1.0) / bounds["second_moment"]}


# --- the twins and the built-in witness -------------------------------------------------------
class Builtin(nn.Module):
    """torch's own: ``nn.init.<scheme>_``, or ``nn.Linear`` / ``nn.Conv2d`` for "default"."""

    def __init__(self, shape: tuple[int, ...], scheme: str, bias: bool = False,
                 **options: Any) -> None:
        super().__init__()
        if scheme == "default":
            out, inp = shape[0], shape[1]
            layer = nn.Linear(inp, out, bias=bias) if len(shape) == 2 else \
                nn.Conv2d(inp, out, tuple(shape[2:]), bias=bias)
            self.weight, self.bias = layer.weight, layer.bias
        else:
            self.weight = nn.Parameter(torch.empty(shape))
            getattr(nn.init, f"{scheme}_")(self.weight, **options)


@contextlib.contextmanager
def default_dtype(trial: Trial) -> Iterator[None]:
    """Create parameters in the trial's dtype in both libraries (restored afterwards)."""
    numpy_before, torch_before = numpy_random.default_dtype(), torch.get_default_dtype()
    numpy_random.set_default_dtype(trial.np_dtype)
    torch.set_default_dtype(trial.torch_dtype)
    try:
        yield
    finally:
        numpy_random.set_default_dtype(numpy_before)
        torch.set_default_dtype(torch_before)


def _parameters(module: Any) -> dict[str, np.ndarray]:
    return {name: (p.detach().cpu().numpy() if hasattr(p, "detach") else p.data)
            for name, p in module.named_parameters()}


def _named_statistics(params: dict[str, np.ndarray], case: Case) -> dict[str, np.ndarray]:
    values = {}
    for name, sample in params.items():
        dist = target(case.init["shape"], case.init["scheme"], name, **_options(case))
        for stat, value in statistics(sample, dist).items():
            values[f"{name}/{stat}"] = value
    return values


def _options(case: Case) -> dict[str, Any]:
    return {k: v for k, v in case.init.items() if k not in ("shape", "scheme", "bias")}


_GAINS = [("linear", None), ("conv2d", None), ("conv_transpose3d", None), ("sigmoid", None),
          ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
          ("leaky_relu", 1), ("selu", None)]
_FAN_SHAPES = [(5, 3), (6, 4, 3), (8, 2, 3, 5)]


def _gains_and_fans(module: Any) -> dict[str, np.ndarray]:
    """calculate_gain for every nonlinearity, fans of 2-, 3- and 4-d weights, from a module
    (the NumPy twin, the torch twin, or torch.nn.init) with those functions."""
    values = {"gain": np.array([module.calculate_gain(n, p) for n, p in _GAINS])}
    for shape in _FAN_SHAPES:
        array = np.zeros(shape) if module is numpy_twin else torch.zeros(shape)
        values[f"fans{shape}".replace(" ", "")] = \
            np.array(module._calculate_fan_in_and_fan_out(array), dtype=np.float64)
    return values


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """Each twin fills its tensors from the trial's seed; their statistics by name."""
    if case.options.get("kind") == "gains":
        outcome = Outcome(numpy=_gains_and_fans(numpy_twin), torch=_gains_and_fans(torch_twin))
        if trial.builtin:
            outcome.builtin = _gains_and_fans(nn.init)
        return outcome
    with default_dtype(trial):
        numpy_random.manual_seed(trial.seed)
        numpy_params = _parameters((numpy_cls or case.numpy)(**case.init))
        torch.manual_seed(trial.seed)
        torch_params = _parameters((torch_cls or case.torch)(**case.init))
        builtin_params = {}
        if trial.builtin and case.builtin is not None:
            torch.manual_seed(trial.seed)
            builtin_params = _parameters(case.builtin(**case.init))
    return Outcome(numpy=_named_statistics(numpy_params, case),
                   torch=_named_statistics(torch_params, case),
                   builtin=_named_statistics(builtin_params, case))


# --- cases: shapes large enough for a sharp test, tolerances from the bounds ------------------
_SPECS = [
    ("xavier-uniform", (256, 384), "xavier_uniform", {}),
    ("xavier-uniform-gain-conv1d", (96, 64, 16), "xavier_uniform", {"gain": 2.0}),
    ("xavier-normal", (384, 256), "xavier_normal", {}),
    ("xavier-normal-tanh-gain", (256, 256), "xavier_normal", {"gain": 5.0 / 3.0}),
    ("kaiming-uniform-relu", (256, 512), "kaiming_uniform", {"nonlinearity": "relu"}),
    ("kaiming-uniform-fan-out-leaky", (512, 64, 2, 2), "kaiming_uniform",
     {"a": 0.2, "mode": "fan_out", "nonlinearity": "leaky_relu"}),
    ("kaiming-normal-relu-fan-out", (128, 1024), "kaiming_normal",
     {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming-normal-tanh", (64, 32, 3, 3), "kaiming_normal", {"nonlinearity": "tanh"}),
    ("kaiming-normal-leaky-default", (1024, 128), "kaiming_normal", {}),
    ("kaiming-normal-fan-in-1", (65536, 1), "kaiming_normal", {"nonlinearity": "relu"}),
    ("linear-default", (32768, 4), "default", {"bias": True}),
    ("conv2d-default", (16384, 2, 2, 2), "default", {"bias": True}),
    ("conv2d-default-no-bias", (128, 16, 5, 5), "default", {}),
]


def _param_sizes(shape: tuple[int, ...], bias: bool) -> dict[str, int]:
    sizes = {"weight": math.prod(shape)}
    if bias:
        sizes["bias"] = shape[0]
    return sizes


N_TESTS = len(DTYPES) * sum(3 * len(_param_sizes(shape, options.get("bias", False)))
                            for _, shape, _, options in _SPECS)
ALPHA_PER_TEST = FALSE_ALARM_RATE / N_TESTS


def _tolerances(shape: tuple[int, ...], scheme: str, options: dict[str, Any]
                ) -> dict[str, Tolerance]:
    """atol = NumPy's bound + torch's bound, each at level ALPHA_PER_TEST / 2."""
    tolerance = {}
    for name, n in _param_sizes(shape, options.get("bias", False)).items():
        kind = target(shape, scheme, name, **{k: v for k, v in options.items()
                                              if k != "bias"}).kind
        for stat, bound in critical_values(n, kind, ALPHA_PER_TEST / 2.0).items():
            for dtype in DTYPES:  # statistical: two samples, so each check adds two bounds
                for check in ("numpy-vs-torch", "torch-vs-builtin"):
                    tolerance[f"{check}:{dtype}:{name}/{stat}"] = Tolerance(rtol=0.0,
                                                                            atol=2.0 * bound)
    return tolerance


def _case(name: str, shape: tuple[int, ...], scheme: str, options: dict[str, Any]) -> Case:
    return Case(name, numpy=numpy_twin.Initialized, torch=torch_twin.Initialized,
                builtin=Builtin, init=dict(shape=shape, scheme=scheme, **options),
                prepare=None,
                fd=False,  # sampling: there is no gradient to check
                tolerance=_tolerances(shape, scheme, options))


CASES = [_case(*spec) for spec in _SPECS] + [
    Case("gains-and-fans", builtin=nn.init.calculate_gain, prepare=None, fd=False,
         options={"kind": "gains"}),  # exact values: the default tolerances
]


# --- the plot: activations and gradients in a deep tanh MLP -----------------------------------
def tanh_mlp_histograms(init: str, seed: int = 0, depth: int = 6, width: int = 100,
                        batch: int = 512) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per layer, the tanh outputs and the gradients with respect to them, in a ``depth`` x
    ``width`` tanh MLP of NumPy twins (float64) whose weights are initialized by ``init``:
    "N(0,1)" (too large: saturates), "default" (nn.Linear's: too small for tanh, activations
    shrink) or "kaiming-tanh" (kaiming_normal_, gain 5/3: keeps the spread). Biases zero."""
    from numpy_impl.layers.activations import Tanh
    from numpy_impl.layers.linear import Linear

    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(depth):
        fc = Linear(width, width).double()
        fc.bias.data[...] = 0.0
        if init == "N(0,1)":
            numpy_twin.normal_(fc.weight, 0.0, 1.0, generator=rng)
        elif init == "default":
            numpy_twin.default_init_(fc.weight, generator=rng)
        else:
            numpy_twin.kaiming_normal_(fc.weight, nonlinearity="tanh", generator=rng)
        layers.append((fc, Tanh()))
    h = rng.standard_normal((batch, width))
    activations = []
    for fc, act in layers:
        h = act(fc(h))                                         # (B, width)
        activations.append(h)
    grad = rng.standard_normal((batch, width))                 # a random upstream dL/dh_last
    gradients = [None] * depth
    for k in reversed(range(depth)):
        gradients[k] = grad                                    # dL/dh_k
        grad = layers[k][0].backward(layers[k][1].backward(grad))
    return activations, gradients


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """weight_init_tanh_mlp.png: per init, activation and gradient histograms by layer."""
    from compare.plots import new_figure, save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    inits = [("N(0,1)", "w ~ N(0, 1): saturated"),
             ("default", "nn.Linear default U(+-1/sqrt(fan_in)): shrinking"),
             ("kaiming-tanh", "kaiming_normal_(nonlinearity='tanh'), gain 5/3: good")]
    fig = new_figure(figsize=(13, 10), layout="constrained")
    axes = fig.subplots(len(inits), 2)
    for row, (init, label) in enumerate(inits):
        activations, gradients = tanh_mlp_histograms(init, seed)
        for k, (h, g) in enumerate(zip(activations, gradients, strict=True)):
            saturated = 100.0 * np.mean(np.abs(h) > 0.97)
            counts, edges = np.histogram(h, bins=80, range=(-1, 1), density=True)
            axes[row, 0].plot(0.5 * (edges[1:] + edges[:-1]), counts,
                              label=f"layer {k + 1}: std {h.std():.2f}, saturated {saturated:.0f}%")
            counts, edges = np.histogram(g, bins=80, density=True)
            axes[row, 1].plot(0.5 * (edges[1:] + edges[:-1]), counts,
                              label=f"layer {k + 1}: std {g.std():.2e}")
        axes[row, 0].set_title(f"tanh outputs by layer\n{label}")
        axes[row, 0].set_xlabel("activation tanh(W h + b)")
        axes[row, 1].set_title(f"gradient dL/dh by layer\n{label}")
        axes[row, 1].set_xlabel("gradient with respect to the layer's output")
        for ax in axes[row]:
            ax.set_ylabel("density")
            ax.legend(fontsize=7)
    fig.suptitle("6 x 100 tanh MLP of NumPy twins, float64, batch 512: activation and gradient "
                 "histograms layer by layer for three initializations")
    path = directory / "weight_init_tanh_mlp.png"
    save(fig, path, dpi=90)
    return [path]


BENCH_INITS = (dict(shape=(1024, 1024), scheme="default", bias=True),
               dict(shape=(1024, 1024), scheme="kaiming_normal", nonlinearity="relu"))


def _bench_work(trial: Trial) -> dict[str, Any]:
    """Each contender builds (allocates and fills) a 1024 x 1024 layer's parameters in the
    trial's dtype: nn.Linear's default init (weight and bias), then kaiming_normal_ (ReLU)."""
    def step(cls: Any) -> Any:
        def make() -> list[Any]:
            with default_dtype(trial):
                return [cls(**init) for init in BENCH_INITS]
        return make
    return {"numpy": step(numpy_twin.Initialized), "torch": step(torch_twin.Initialized),
            "builtin": step(Builtin)}


CONCEPT = Concept(
    name="weight_init",
    family="training",
    summary="nn.init schemes and nn.Linear / nn.Conv2d default init, compared as distributions",
    compares=("each twin's ECDF at the target's percentiles, standardized mean and second "
              "moment (two-sample tests, false-alarm rate <= 1e-3 per run); calculate_gain "
              "and fans exactly"),
    witness="torch.nn.init, nn.Linear, nn.Conv2d (bitwise, same seed)",
    run=run,
    bench=Bench("one init of a 1024 x 1024 layer: nn.Linear's default (weight and bias), "
                "then kaiming_normal_ (ReLU)", work=_bench_work),
    extra_plots=extra_plots,
    cases=CASES,
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
