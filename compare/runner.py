"""Run a concept: every case, every dtype, every check; measure every named tensor.

``run_module`` is the default way a case runs (the README's "What a comparison does"):

1. inputs drawn once from the seeded Generator, handed to torch with ``torch.from_numpy``;
2. the torch twin initializes itself (``prepare`` perturbs it), its ``state_dict`` is loaded
   into the NumPy twin;
3. randomness inside the concept (a dropout mask) is an input, drawn once;
4. the upstream gradient is random normal, never ones;
5. outputs, input gradients, parameter gradients, buffers and named intermediates are
   collected by name on both sides;
6. the torch built-in witness runs like the twin, and float64 finite differences check the
   NumPy backward;
7. a float32 run is refereed by a float64 run on the same (float32-rounded) data.
"""
from __future__ import annotations

import functools
import inspect
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from compare.concept import Case, Concept, Outcome, Trial
from compare.finite_diff import kink_resolved, numerical_gradient, weighted_sum
from compare.metrics import Diff, kind_of, measure, referee
from compare.report import Report
from compare.tolerances import DEFAULT, Scope, Tolerance

FD_MAX_ELEMENTS = 96  # per tensor; larger tensors are checked on a seeded random sample


# --- nested outputs --------------------------------------------------------------------------
def flatten(value: Any, prefix: str = "out") -> list[tuple[str, Any]]:
    """A possibly nested tuple of outputs as [(name, leaf)]: out, or out.0, out.1.0, ..."""
    if isinstance(value, (tuple, list)):
        items = []
        for i, item in enumerate(value):
            items.extend(flatten(item, f"{prefix}.{i}"))
        return items
    return [(prefix, value)]


def unflatten(structure: Any, leaves: dict[str, Any], prefix: str = "out") -> Any:
    """The inverse of ``flatten`` for a dict of leaves (missing leaves become None)."""
    if isinstance(structure, (tuple, list)):
        return tuple(unflatten(item, leaves, f"{prefix}.{i}") for i, item in enumerate(structure))
    return leaves.get(prefix)


def _tensor(array: np.ndarray) -> Any:
    """A torch tensor sharing nothing with ``array`` (0-d stays 0-d, unlike ascontiguousarray)."""
    import torch
    return torch.from_numpy(np.array(array, copy=True, order="C"))


def _is_float(array: Any) -> bool:
    return np.issubdtype(np.asarray(array).dtype, np.floating)


# --- the torch side --------------------------------------------------------------------------
def _torch_side(module: Any, inputs: dict[str, np.ndarray], trial: Trial,
                draw_upstream: Callable[[list[tuple[str, Any]]], dict[str, np.ndarray]]):
    """Forward, backward with upstream gradients drawn from the output shapes; all named values."""
    import torch
    leaves = {}
    for name, value in inputs.items():
        tensor = _tensor(value).to(trial.device)
        if tensor.is_floating_point():
            tensor.requires_grad_(True)
        leaves[name] = tensor
    output = module(*leaves.values())
    outputs = flatten(output)
    upstream = draw_upstream(outputs)
    pairs = [(t, _tensor(upstream[n]).to(trial.device)) for n, t in outputs
             if n in upstream and t.requires_grad]
    if pairs:
        # backward of the scalar L = sum(g * y): dL/dy = 1 * g exactly, so every gradient is
        # the one backward(y, g) gives, bit for bit; but an explicit gradient argument makes
        # autograd's first call import torch's symbolic-shapes machinery (~1 s per process)
        loss = sum((t * g).sum() for t, g in pairs)
        loss.backward()

    def to_numpy(tensor: Any) -> np.ndarray:
        return tensor.detach().cpu().numpy()

    values = {name: to_numpy(t) for name, t in outputs}
    for name, tensor in leaves.items():
        if tensor.requires_grad:
            grad = tensor.grad if tensor.grad is not None else torch.zeros_like(tensor)
            values[f"grad.input.{name}"] = to_numpy(grad)
    for name, param in module.named_parameters():
        grad = param.grad if param.grad is not None else torch.zeros_like(param)
        values[f"grad.param.{name}"] = to_numpy(grad)
    for name, buffer in module.named_buffers():
        values[f"buffer.{name}"] = to_numpy(buffer)
    for name, tensor in (getattr(module, "intermediates", None) or {}).items():
        values[f"inter.{name}"] = to_numpy(tensor)
        if tensor.requires_grad:
            grad = tensor.grad if tensor.grad is not None else torch.zeros_like(tensor)
            values[f"grad.inter.{name}"] = to_numpy(grad)
    for name, tensor in leaves.items():  # an input the torch side changed in place, if any
        after = to_numpy(tensor)
        if not np.array_equal(after, inputs[name], equal_nan=True):
            values[f"input.{name}"] = after
    return values, upstream


# --- the NumPy side --------------------------------------------------------------------------
def numpy_forward_backward(module: Any, inputs: dict[str, np.ndarray],
                           upstream: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Forward and backward of a NumPy twin; every named value, as the torch side names them."""
    output = module(*inputs.values())
    outputs = flatten(output)
    values = {name: np.asarray(v) for name, v in outputs}
    grad_output = unflatten(output, upstream)
    grads = module.backward(grad_output)
    float_inputs = [name for name, x in inputs.items() if _is_float(x)]
    if not isinstance(grads, tuple):
        grads = () if grads is None and not float_inputs else (grads,)
    if len(grads) == len(inputs) != len(float_inputs):  # also accept one slot per input
        grads = tuple(g for name, g in zip(inputs, grads, strict=True) if name in float_inputs)
    if len(grads) != len(float_inputs):
        raise ValueError(
            f"{type(module).__name__}.backward returned {len(grads)} gradient(s), expected one "
            f"per floating-point input ({', '.join(float_inputs) or 'none'})")
    for name, grad in zip(float_inputs, grads, strict=True):
        values[f"grad.input.{name}"] = np.asarray(grad)
    for name, param in module.named_parameters():
        values[f"grad.param.{name}"] = param.grad
    for name, buffer in module.named_buffers():
        values[f"buffer.{name}"] = buffer
    intermediate_grads = getattr(module, "intermediate_grads", None) or {}
    for name, value in (getattr(module, "intermediates", None) or {}).items():
        values[f"inter.{name}"] = np.asarray(value)
        if name in intermediate_grads:
            values[f"grad.inter.{name}"] = np.asarray(intermediate_grads[name])
    return values


def numpy_twin(case: Case, state: dict[str, np.ndarray], trial: Trial, cls: Any = None) -> Any:
    """The NumPy twin (or a user's class) in the trial's dtype, with the torch twin's weights."""
    module = (cls or case.numpy)(**case.init)
    module.to(trial.np_dtype)
    module.load_state_dict(state)
    module.train(case.train)
    return module


def torch_module(cls: Any, case: Case, state: dict[str, np.ndarray], trial: Trial) -> Any:
    module = cls(**case.init).to(dtype=trial.torch_dtype)
    module.load_state_dict({k: _tensor(v) for k, v in state.items()})
    module.to(trial.device)
    module.train(case.train)
    return module


def initial_state(case: Case, trial: Trial, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The torch twin's own initialization (seeded), prepared, in float64, as arrays."""
    import torch
    torch.manual_seed(trial.seed)
    reference = case.torch(**case.init).to(dtype=torch.float64)
    if case.prepare is not None:
        with torch.no_grad():
            case.prepare(reference, rng)
    return {k: trial.cast(v.detach().cpu().numpy().copy())
            for k, v in reference.state_dict().items()}


def run_module(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None, *,
               numpy_side: bool = True) -> Outcome:
    """The default runner: one forward and backward of each twin on identical data.
    ``numpy_side=False`` runs the torch twin only (the float64 referee needs nothing else)."""
    rng = trial.rng()
    state = initial_state(case, trial, rng)
    inputs = {name: trial.cast(draw(rng)) for name, draw in case.inputs.items()}

    def draw_upstream(outputs: list[tuple[str, Any]]) -> dict[str, np.ndarray]:
        return {name: trial.cast(rng.standard_normal(tuple(t.shape)))
                for name, t in outputs if t.is_floating_point() and t.requires_grad}

    twin = torch_module(torch_cls or case.torch, case, state, trial)
    torch_values, upstream = _torch_side(twin, inputs, trial, draw_upstream)
    if not numpy_side:
        return Outcome(numpy={}, torch=torch_values, inputs=inputs, upstream=upstream)
    given = {k: v.copy() for k, v in inputs.items()}
    numpy_values = numpy_forward_backward(numpy_twin(case, state, trial, numpy_cls), given,
                                          upstream)
    for name, value in given.items():  # a forward that writes into its input, unlike torch's
        torch_after = torch_values.get(f"input.{name}", inputs[name])
        if not np.array_equal(value, torch_after, equal_nan=True):
            numpy_values[f"input.{name}"], torch_values[f"input.{name}"] = value, torch_after
        elif f"input.{name}" in torch_values:  # both changed it alike (an in-place layer)
            numpy_values[f"input.{name}"] = value
    outcome = Outcome(numpy=numpy_values, torch=torch_values, inputs=inputs, upstream=upstream)
    if trial.builtin and case.builtin is not None:
        builtin = torch_module(case.builtin, case, state, trial)
        outcome.builtin, _ = _torch_side(builtin, inputs, trial, lambda outputs: upstream)
    if trial.fd and case.fd and trial.dtype == "float64":
        outcome.fd = finite_differences(case, state, inputs, upstream, numpy_values, trial,
                                        numpy_cls)
    return outcome


def finite_differences(case: Case, state: dict[str, np.ndarray], inputs: dict[str, np.ndarray],
                       upstream: dict[str, np.ndarray], analytic: dict[str, np.ndarray],
                       trial: Trial, numpy_cls: Any = None,
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Central differences of sum(upstream * output) w.r.t. every float input and parameter,
    compared with the NumPy twin's analytic gradients (a seeded sample of large tensors)."""
    module = numpy_twin(case, state, trial, numpy_cls)
    arrays = {k: np.array(v, copy=True) for k, v in inputs.items()}
    output = module(*arrays.values())
    grad_output = unflatten(output, upstream)
    loss = lambda: weighted_sum(module(*arrays.values()), grad_output)  # noqa: E731
    targets = {f"grad.input.{k}": v for k, v in arrays.items() if _is_float(v)}
    targets.update({f"grad.param.{k}": p.data for k, p in module.named_parameters()})
    pick = np.random.default_rng(trial.seed + 1)
    result = {}
    for name, array in targets.items():
        if name not in analytic:
            continue
        index = np.arange(array.size) if array.size <= FD_MAX_ELEMENTS else \
            np.sort(pick.choice(array.size, FD_MAX_ELEMENTS, replace=False))
        numeric, kinks = numerical_gradient(loss, array, index), 0
        mine = np.asarray(analytic[name])
        if mine.size == array.size:  # else a wrong shape: measured (and named) as it is
            mine = mine.reshape(-1)[index]
            numeric, kinks = kink_resolved(loss, array, index, mine, numeric)
        if array.size <= FD_MAX_ELEMENTS:
            mine, numeric = analytic[name], numeric.reshape(array.shape)
        result[name] = (mine, numeric, kinks) if kinks else (mine, numeric)
    return result


# --- comparing ---------------------------------------------------------------------------------
def tolerance_scope(concept: Concept, case: Case, check: str, key: str,
                    name: str = "") -> tuple[str, str] | None:
    """Which override sets this tolerance: ("case" or "concept", its key), or None for the
    default. The most specific key wins: check and tensor, tensor, check, bare; a case's
    setting before its concept's. A user's code (``verify``) is held to the numpy-vs-torch
    bounds (its backward to the finite-difference ones)."""
    if check.startswith("yours-vs-"):
        check = "numpy-vs-fd" if check == "yours-vs-fd" else "numpy-vs-torch"
    sources = (("case", _parsed_keys(tuple(case.tolerance))),
               ("concept", _parsed_keys(tuple(concept.tolerance))))
    for scoped in (Scope(key, check, name), Scope(key, None, name), Scope(key, check), Scope(key)):
        for label, parsed in sources:
            if scoped in parsed:
                return label, parsed[scoped]
    return None


@functools.lru_cache(maxsize=1024)
def _parsed_keys(keys: tuple[str | Scope, ...]) -> dict[Scope, str | Scope]:
    """Each override key (string or Scope) by its parsed Scope, the first key written winning.
    Parsed once per set of keys: a comparison looks up tens of thousands of tolerances, and
    parsing every key for each lookup took a quarter of ``dualgrad run --all``."""
    parsed: dict[Scope, str | Scope] = {}
    for given in keys:
        parsed.setdefault(Scope.parse(given), given)
    return parsed


def tolerance_for(concept: Concept, case: Case, check: str, key: str, name: str = "") -> Tolerance:
    """The tolerance of one check for a dtype ("float64", "float32") or finite differences ("fd").

    A case or concept may scope a setting to a check, a tensor or both:
    "torch-vs-builtin:float32" loosens only the built-in witness, "float64:grad.param.b1" one
    tensor in every check, "numpy-vs-torch:float32:out" one tensor in one check; a bare
    "float32" applies to every check (see ``tolerance_scope`` for the order).
    """
    scope = tolerance_scope(concept, case, check, key, name)
    if scope is None:
        return DEFAULT[key]
    return (case.tolerance if scope[0] == "case" else concept.tolerance)[scope[1]]


ToleranceLookup = Callable[[str, str, str], Tolerance]  # (check, dtype or "fd", tensor) -> bound


def compare_named(ours: dict[str, np.ndarray], reference: dict[str, np.ndarray], *,
                  check: str, case: str, dtype: str, tolerance: ToleranceLookup,
                  truth: dict[str, np.ndarray] | None = None,
                  labels: tuple[str, str] = ("NumPy twin", "torch twin"),
                  optional: tuple[str, ...] = ()) -> list[Diff]:
    """Measure every tensor of ``ours`` against the same name in ``reference``. A name on one
    side only fails, unless ``ours`` lacks it and it starts with an ``optional`` prefix."""
    diffs = []
    for name in list(reference) + [n for n in ours if n not in reference]:
        if name not in ours and name.startswith(optional) and optional:
            continue
        tol = tolerance(check, dtype, name)
        if name not in ours or name not in reference:
            present = reference.get(name, ours.get(name))
            diff = measure(np.full(np.shape(present), np.nan), present, tol, check=check,
                           name=name, case=case, dtype=dtype, keep_arrays=False)
            only, lacking = (labels[1], labels[0]) if name not in ours else labels
            diff.passed, diff.note = False, f"missing from the {lacking}"
            diff.diagnosis = (f"only the {only} has a tensor named {name!r}; the {lacking} "
                              f"returns none by that name (a misnamed or missing result?)")
            if kind_of(name) == "input" and name in ours:  # only a modified input is listed
                from compare.verify.diagnose import modified_input_sentence
                diff.diagnosis = modified_input_sentence(name)
        else:
            diff = measure(ours[name], reference[name], tol, check=check, name=name,
                           case=case, dtype=dtype)
            if truth is not None and name in truth:
                diff.referee = referee(ours[name], reference[name], truth[name])
        diffs.append(diff)
    return diffs


def compare_fd(fd: dict[str, tuple[np.ndarray, np.ndarray]], *, check: str, case: str,
               tolerance: ToleranceLookup, full: dict[str, np.ndarray]) -> list[Diff]:
    """Analytic gradients against central finite differences (float64); ``full`` holds the
    whole analytic tensors, to say when a large one was checked on a sample."""
    diffs = []
    for name, (analytic, numeric, *kinks) in fd.items():
        diff = measure(analytic, numeric, tolerance(check, "fd", name), check=check, name=name,
                       case=case, dtype="float64")
        notes = []
        if np.shape(analytic) != np.shape(full.get(name)):
            notes.append(f"{np.size(numeric)} sampled elements")
        if kinks and kinks[0]:
            notes.append(f"{kinks[0]} at a kink, differenced from its clean side")
        if notes:
            diff.note = "; ".join(notes)
        diffs.append(diff)
    return diffs


def attach_diagnoses(diffs: list[Diff], outcome: Outcome, case: Case) -> None:
    """Give every failing diff a one-sentence diagnosis of what the difference looks like."""
    from compare.verify.diagnose import Context, diagnose
    init = dict(case.init)
    if case.numpy is not None:  # the defaults count too: ignore_index=-100, p=0.5, ...
        for name, parameter in inspect.signature(case.numpy).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                init.setdefault(name, parameter.default)
    context = Context(inputs=outcome.inputs, init=init, upstream=outcome.upstream,
                      contributions=outcome.contributions)
    for d in diffs:
        if not d.passed and d.a is not None and d.b is not None:
            d.diagnosis = diagnose(d.name, d.a, d.b, context, d.bound)


def compare_outcome(outcome: Outcome, case: Case, dtype: str,
                    tolerance: ToleranceLookup = lambda check, key, name: DEFAULT[key],
                    truth: dict[str, np.ndarray] | None = None) -> list[Diff]:
    """Every named tensor of an outcome measured: numpy vs torch, torch vs built-in, vs fd."""
    common = dict(case=case.name, tolerance=tolerance)
    diffs = compare_named(outcome.numpy, outcome.torch, check="numpy-vs-torch", dtype=dtype,
                          truth=truth, **common)
    witnessed = {name: outcome.torch[name] for name in outcome.builtin if name in outcome.torch}
    diffs += compare_named(witnessed, outcome.builtin, check="torch-vs-builtin", dtype=dtype,
                           labels=("torch twin", "built-in"), **common)
    diffs += compare_fd(outcome.fd, check="numpy-vs-fd", full=outcome.numpy, **common)
    attach_diagnoses(diffs, outcome, case)
    return diffs


def run_case(concept: Concept, case: Case, dtype: str, seed: int = 0,
             device: str = "cpu", fd: bool = True) -> list[Diff]:
    """One case in one dtype, every check (``fd=False`` skips finite differences)."""
    run = concept.run or run_module
    outcome = run(case, Trial(dtype=dtype, seed=seed, device=device, fd=fd))
    truth = None
    if dtype != "float64":
        referee_trial = Trial(dtype="float64", seed=seed, data_dtype=dtype, device=device,
                              builtin=False, fd=False)
        if concept.run is None:  # the referee's NumPy side would be computed for nothing
            truth = run_module(case, referee_trial, numpy_side=False).torch
        else:
            truth = run(case, referee_trial).torch
    return compare_outcome(outcome, case, dtype, truth=truth,
                           tolerance=lambda check, key, name: tolerance_for(concept, case, check,
                                                                          key, name))


def describe_exception(error: BaseException, skip_prefixes: Iterable[str] = ()) -> str:
    """One line: the exception and the innermost frame outside the engine."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not any(f.filename.startswith(p) for p in skip_prefixes)]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def run_concept(concept: Concept, dtypes: Sequence[str] = ("float64", "float32"),
                seed: int = 0, device: str = "cpu",
                cases: Sequence[str] | None = None, fd: bool = True) -> Report:
    """Run every case of a concept in every dtype; an exception in a case becomes the
    report's error (the report fails) rather than a crash."""
    report = Report(concept=concept.name, family=concept.family, summary=concept.summary,
                    seed=seed)
    selected = [c for c in concept.cases if cases is None or c.name in cases]
    started = time.perf_counter()
    for case in selected:
        for dtype in (d for d in dtypes if d in case.dtypes):
            try:
                report.diffs.extend(run_case(concept, case, dtype, seed, device, fd))
            except Exception as error:  # noqa: BLE001 -- reported, the run goes on
                report.error = f"case {case.name!r}, {dtype}: {describe_exception(error)}"
                break
        if report.error:
            break
    report.seconds = time.perf_counter() - started
    return report
