"""What a concept declares: its cases, its twins, its built-in witness.

A ``Concept`` is data: a name, a family, a one-line summary and a list of ``Case``s. How a case
runs is a function ``run(case, trial) -> Outcome``; the default (``compare.runner.run_module``)
covers every concept that is a module (a layer, a loss, a whole model): build the torch twin,
load its weights into the NumPy twin, run forward and backward on the same data, collect every
named tensor. Concepts that are not one forward/backward (optimizers, training loops) pass their
own ``run`` and return the same ``Outcome``: two dicts of named arrays, compared by the engine.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compare.tolerances import DTYPES, Tolerance

Draw = Callable[[np.random.Generator], np.ndarray]


# --- input specifications: drawn once, in float64, from the case's seeded Generator -------
def randn(*shape: int, scale: float = 1.0, shift: float = 0.0) -> Draw:
    return lambda rng: shift + scale * rng.standard_normal(shape)


def uniform(low: float, high: float, *shape: int) -> Draw:
    return lambda rng: rng.uniform(low, high, size=shape)


def randint(high: int, *shape: int, low: int = 0) -> Draw:
    return lambda rng: rng.integers(low, high, size=shape, dtype=np.int64)


def bernoulli(p: float, *shape: int) -> Draw:
    return lambda rng: rng.random(shape) < p


def fixed(values: Any, dtype: Any = None) -> Draw:
    array = np.array(values, dtype=dtype)
    return lambda rng: array.copy()


def perturb_parameters(module: Any, rng: np.random.Generator, scale: float = 0.1) -> None:
    """Add N(0, scale^2) noise to every parameter of a torch module (under no_grad).

    Default initializations hide bugs: LayerNorm's weight of ones makes a forgotten factor
    of gamma invisible, a bias of zeros a forgotten bias term. The noise comes from the
    case's Generator, so both twins still get identical weights (via state_dict).
    """
    import torch
    with torch.no_grad():
        for _, param in module.named_parameters():
            noise = rng.standard_normal(tuple(param.shape)) * scale
            param.add_(torch.from_numpy(noise).to(param.dtype))


@dataclass(frozen=True)
class Case:
    """One configuration of a concept: constructor arguments, inputs, mode and checks.

    ``numpy``/``torch``: the twin classes (same constructor signature, same state_dict keys).
    ``builtin``: the torch built-in witness with that same constructor and state_dict (often
    the ``torch.nn`` class itself), or None where torch has none.
    ``inputs``: name -> draw(rng); floating-point inputs get gradients, integer/bool ones not.
    ``prepare(torch_module, rng)``: sets the initial state (default: perturb the parameters).
    ``fd``: check the NumPy backward by finite differences (off only at kinks, with a reason).
    ``tolerance``: override per dtype ("float64", "float32") or for finite differences ("fd"),
    for the whole case or one tensor ("float32:grad.param.b1"); whoever sets one says why.
    ``options``: free-form settings for a concept's own ``run``.
    ``dtypes``: the dtypes the case runs in (default both); whoever leaves one out says why.
    """

    name: str
    numpy: type | None = None
    torch: type | None = None
    builtin: Callable[..., Any] | None = None
    init: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Draw] = field(default_factory=dict)
    train: bool = True
    prepare: Callable[[Any, np.random.Generator], None] | None = perturb_parameters
    fd: bool = True
    tolerance: Mapping[str, Tolerance] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    dtypes: tuple[str, ...] = ("float64", "float32")


@dataclass(frozen=True)
class Trial:
    """How to run a case once: compute dtype, seed, the dtype its data is rounded to, checks.

    ``data_dtype`` differs from ``dtype`` only for the float64 referee of a float32 run: the
    referee computes in float64 on data (inputs, weights, upstream gradients) first rounded to
    float32, so it is the exact answer to the question the float32 twins were asked.
    """

    dtype: str
    seed: int = 0
    data_dtype: str | None = None
    device: str = "cpu"
    builtin: bool = True
    fd: bool = True

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(DTYPES[self.dtype])

    @property
    def torch_dtype(self) -> Any:
        import torch
        return {"float64": torch.float64, "float32": torch.float32}[self.dtype]

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def cast(self, array: Any) -> Any:
        """Floating-point data rounded through ``data_dtype``, then in the compute dtype."""
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.floating):
            return array
        return array.astype(DTYPES[self.data_dtype or self.dtype]).astype(self.np_dtype)


@dataclass
class Outcome:
    """Named arrays from one trial. ``numpy`` and ``torch`` must have the same names;
    ``builtin`` may cover a subset of ``torch``'s; ``fd`` maps a gradient name to
    (analytic, numeric) arrays, the analytic ones taken from the NumPy twin (a third item, when
    present, counts the elements differenced from one side of a kink). ``inputs``,
    ``upstream`` (output name -> dL/d output) and ``contributions`` (tensor name -> how many
    terms the reference adds into each element) are context for the diagnoses."""

    numpy: dict[str, np.ndarray]
    torch: dict[str, np.ndarray]
    builtin: dict[str, np.ndarray] = field(default_factory=dict)
    fd: dict[str, tuple] = field(default_factory=dict)  # (analytic, numeric[, kinks])
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # as given: context for diagnoses
    upstream: dict[str, np.ndarray] = field(default_factory=dict)
    contributions: dict[str, np.ndarray] = field(default_factory=dict)


Work = Callable[[], Any]  # one timed step of one contender (forward + backward, a train step...)


@dataclass(frozen=True)
class Bench:
    """What ``dualgrad bench`` times for a concept, at a size representative of its use.

    ``size``: that size in words, printed with the timings ("(B, C) = (4096, 512)").
    A module concept gives ``cases``: Cases like its test cases but at benchmark size; each
    is timed as one forward + backward of the NumPy twin, the torch twin and the built-in
    (the same weights, inputs and upstream gradient as in a comparison), the concept's time
    being the sum over them. A concept with its own runner (an optimizer step over a realistic
    parameter set, one training step, one BPE training run) gives ``work(trial)`` instead:
    a dict with the steps ``"numpy"``, ``"torch"`` and optionally ``"builtin"``, each a
    function doing one unit of that work, set up for ``trial.dtype`` (a step may keep state
    from call to call: the optimizer moves on, the model trains on). Without a declaration
    ``dualgrad bench`` times the concept's largest case and marks the row as a default.
    """

    size: str
    cases: Sequence[Case] = ()
    work: Callable[[Trial], dict[str, Work]] | None = None

    def __post_init__(self) -> None:
        if bool(self.cases) == (self.work is not None):
            raise ValueError(f"Bench({self.size!r}) needs either cases or work, not both")


@dataclass
class Concept:
    """A concept: where its twins live, what it compares, and its cases.

    ``run`` defaults to the module runner (``compare.runner.run_module``). A concept's own
    ``run(case, trial, numpy_cls=None, torch_cls=None) -> Outcome`` returns both twins'
    tensors by name (multi-step concepts prefix the step: ``step3/grad.param.w``); it must
    honour ``numpy_cls`` / ``torch_cls`` (a user's class in place of the twin) so that
    ``compare.verify`` works, and ``trial.cast`` every datum it creates (the float64 referee of
    a float32 run depends on it). ``extra_plots``, if given, writes concept-specific figures:
    ``extra_plots(directory, seed) -> [paths]``.
    ``compares`` is one line for the README's concept table and ``dualgrad list``.
    ``bench`` declares what ``dualgrad bench`` times (see ``Bench``); None: a default.
    """

    name: str
    family: str
    summary: str
    cases: Sequence[Case]
    compares: str = ""
    witness: str = ""  # the built-in's name, for listings ("F.layer_norm", "none")
    run: Callable[[Case, Trial], Outcome] | None = None
    tolerance: Mapping[str, Tolerance] = field(default_factory=dict)
    extra_plots: Callable[[Path, int], list[Path]] | None = None
    bench: Bench | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.family}/{self.name}"

    def source_path(self, tree: str) -> Path:
        """The concept's file in ``numpy_impl``, ``torch_impl`` or ``compare``."""
        return Path(__file__).resolve().parent.parent / tree / self.family / f"{self.name}.py"

    def case(self, name: str) -> Case:
        for case in self.cases:
            if case.name == name:
                return case
        raise KeyError(f"{self.name} has no case {name!r}; cases: "
                       + ", ".join(c.name for c in self.cases))
