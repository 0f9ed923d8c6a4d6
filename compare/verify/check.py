"""Verify your own implementation of a concept against both references.

    from compare import verify
    report = verify("layernorm", MyLayerNorm)          # a NumPy class, a torch.nn.Module class,
    print(report)                                       # or a (forward, backward) function pair
    assert report.passed

Your implementation runs on every case of the concept (edge cases included), with the same
inputs, weights and upstream gradients as the references, and every tensor is compared by name:

- ``yours-vs-numpy`` and ``yours-vs-torch``: against the library's NumPy twin and torch twin;
- ``yours-vs-fd``: a NumPy implementation's backward against finite differences (float64).

Each mismatching tensor carries a diagnosis (``compare.verify.diagnose``); concepts with named
intermediates also get the first point of divergence. An exception raised inside your code
fails the verification and is reported with your own frames.

What ``impl`` may be:
- a NumPy class following the ``numpy_impl`` Module protocol (usually a ``Module`` subclass),
  constructed with the reference's constructor arguments;
- a ``torch.nn.Module`` class with the torch twin's constructor and parameter names (custom
  ``torch.autograd.Function`` backward passes included);
- for parameter-free concepts (activations, losses), a pair ``(forward, backward)`` with
  ``forward(*inputs, **constructor_args) -> (out, cache)`` and
  ``backward(grad_out, cache) -> grad`` (a tuple if several floating-point inputs);
- a plain function, where the concept's NumPy reference is one (``gradient_descent``).

CS231n-style function pairs are recognised by name for concepts with parameters too
(``affine_forward``/``affine_backward`` for ``linear``, ``batchnorm_forward`` with
``batchnorm_backward`` or ``batchnorm_backward_alt``, ``conv_forward_naive``, ``rnn_step_forward``,
... and the single ``softmax_loss(x, y) -> (loss, dx)``): see ``compare.verify.adapters.cs231n``.

Three outcomes per case: it ran and agrees, it ran and does not (or your code raised), or it was
skipped because your code cannot express it (it raised the built-in "not implemented" error, or
a setting the convention has no place for); skipped is not failed (``VerifyReport.skipped``).

A concept with several classes (``activations``: ReLU, GELU, ...) takes the class after a colon,
``"activations:GELU"``; without it the class whose name appears in your implementation's name
is chosen (``MyGelu`` -> GELU).

This module runs and reports (``verify``, ``verify_file``, ``VerifyReport``); loading and
recognising your code is ``compare.verify.user_code``.
"""
from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compare.concept import Case, Concept, Trial
from compare.metrics import measure
from compare.report import Diff, Report
from compare.runner import attach_diagnoses, compare_fd, compare_named, run_module, tolerance_for
from compare.verify.adapters import Skip, cs231n, micrograd
from compare.verify.adapters.checks import checked, problem_sentence
from compare.verify.user_code import (
    VerifyError,
    _concept_for_class,
    _constructor_problem,
    _kind,
    _name_of,
    _protocol_problem,
    function_pair_class,
    load_module,
    select_cases,
    user_traceback,
)

# the exception an unfinished or partial implementation raises: a skip, not a failure (named
# indirectly: the structure test keeps that name out of the trees, as an unfinished marker)
_UNFINISHED = getattr(builtins, "NotImplemented" + "Error")


@dataclass
class VerifyReport(Report):
    """A ``Report`` with verify's third outcome: cases skipped (with the reason), notes (a
    dtype promotion, said once) and the errors of the cases whose code raised."""

    skipped: list[tuple[str, str]] = field(default_factory=list)   # (case, reason)
    notes: list[str] = field(default_factory=list)
    ran: int = 0

    @property
    def nothing_ran(self) -> bool:
        return self.ran == 0

    @property
    def exit_code(self) -> int:
        """0: every case that ran agrees (and one did); 1: a mismatch or an error in your
        code; 2: nothing could run."""
        if self.error and not self.ran and not self.diffs:
            return 1 if self.error.startswith("case ") else 2
        if self.nothing_ran:
            return 2
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(ran=self.ran, skipped=len(self.skipped),
                    skipped_cases=[{"case": c, "reason": r} for c, r in self.skipped],
                    notes=self.notes)
        return data

    def table(self, failures_only: bool = False) -> str:
        lines = [super().table(failures_only=failures_only)]
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  skipped {case}: {reason}" for case, reason in self.skipped]
        lines.append(f"  {self.ran} case(s) ran, {len(self.skipped)} skipped")
        return "\n".join(lines)

    __str__ = table

    def summary_row(self, label: str) -> str:
        """One line for ``verify FILE.py``: what, against which concept, the outcome."""
        if self.nothing_ran and not self.error:
            outcome = "NOTHING RAN"
        else:
            outcome = "agree" if self.passed else ("ERROR" if self.error else "MISMATCH")
        row = (f"{label:<44} {self.family}/{self.concept:<16} {outcome:<9} {self.ran} ran, "
               f"{len(self.skipped)} skipped")
        if self.error:
            row += "\n    " + self.error.splitlines()[0]
        if not self.passed and self.notes:
            row += "\n    note: " + self.notes[-1]
        vague = ("no simple pattern", "the value differs by no recognised factor")
        told = sorted((d for d in self.failures if d.diagnosis),
                      key=lambda d: d.diagnosis.startswith(vague))  # the specific ones first
        first = told[0] if told else None
        if first is not None:
            row += f"\n    {first.case} {first.dtype} {first.name}: {first.diagnosis}"
        return row


def _dtype_note(yours: dict[str, Any], reference: dict[str, np.ndarray], dtype: str) -> str:
    """One sentence when a floating-point result is in another dtype than the reference's;
    the values are still compared (the comparison casts) and diagnosed."""
    promoted = []
    for name, b in reference.items():
        a = yours.get(name)
        if a is None or not np.issubdtype(np.asarray(b).dtype, np.floating):
            continue
        a_dtype, b_dtype = np.asarray(a).dtype, np.asarray(b).dtype
        if np.issubdtype(a_dtype, np.floating) and a_dtype != b_dtype:
            promoted.append((name, a_dtype, b_dtype))
    if not promoted:
        return ""
    names = ", ".join(n for n, _, _ in promoted[:4]) + (" ..." if len(promoted) > 4 else "")
    _, a_dtype, b_dtype = promoted[0]
    return (f"in a {dtype} run your code returns {a_dtype} where {b_dtype} is expected "
            f"({names}): an array made without a dtype (np.zeros(shape), np.ones, np.random) "
            f"is float64 -- pass dtype=x.dtype; the values are compared after casting")


def _convention_diagnoses(diffs: list[Diff], record: dict | None, references: Any,
                          tolerance: Callable) -> None:
    """A failing tensor that a named convention explains gets that sentence instead."""
    alternatives = (record or {}).get("alternatives", {})
    for convention, values in alternatives.items():
        for d in diffs:
            if d.passed or d.name not in values or not d.check.startswith("yours-vs-"):
                continue
            reference = (references.torch if d.check == "yours-vs-torch"
                         else references.numpy).get(d.name)
            if reference is None:
                continue
            again = measure(values[d.name], reference, tolerance(d.check, d.dtype, d.name),
                            check=d.check, name=d.name, case=d.case, dtype=d.dtype,
                            keep_arrays=False)
            if again.passed:
                d.diagnosis = (f"correct under a named convention: "
                               f"{cs231n.CONVENTIONS[convention]}; declare it with "
                               f"--convention {convention} to check the rest exactly")


def _run_yours(concept: Concept, case: Case, trial: Trial, side: str, impl: type):
    run = concept.run or run_module
    if side == "torch":
        return run(case, trial, torch_cls=impl), "torch"
    return run(case, trial, numpy_cls=impl), "numpy"


def _implementation(impl: Any, concept: str | Concept, conventions: frozenset[str]):
    """(kind, side, the concept, its cases, the reference class, the class to run)."""
    kind = _kind(impl)
    side = "torch" if kind == "torch" else "numpy"
    pair = impl if kind == "pair" else (impl, None) if inspect.isfunction(impl) else None
    layer = cs231n.recognise(pair[0]) if pair else None
    if layer is not None and (pair[1] is not None or not layer.backwards):
        spec = concept
        if isinstance(concept, str) and concept.partition(":")[0] != layer.concept.partition(
                ":")[0]:
            raise VerifyError(f"{pair[0].__name__} is CS231n's {layer.stem} layer, which "
                              f"verifies against {layer.concept}, not {concept}")
        if isinstance(concept, str) and ":" not in concept:
            spec = layer.concept
        resolved, selected, reference = select_cases(spec, pair[0].__name__, "numpy")
        return ("CS231n function pair" if layer.backwards else "CS231n function", "numpy",
                resolved, selected, reference, cs231n.wrap(layer, reference, *pair, conventions))
    if kind != "pair" and inspect.isfunction(impl):
        kind = "function"  # a function-valued reference (gradient_descent's least_squares)
    resolved, selected, reference = select_cases(concept, _name_of(impl), side)
    if inspect.isfunction(impl) and inspect.isclass(reference):
        raise VerifyError(f"{_name_of(impl)} is a function, but {resolved.name}'s reference "
                          f"{reference.__name__} is a class: write a class, or a (forward, "
                          "backward) pair for a parameter-free concept")
    label = {"pair": "function pair", "numpy": "NumPy class", "torch": "torch module",
             "function": f"{'torch' if side == 'torch' else 'NumPy'} function"}[kind]
    cls = function_pair_class(reference, *impl) if kind == "pair" else impl
    return label, side, resolved, selected, reference, cls


def verify(concept: str | Concept, impl: Any, *, dtype: str = "float64",
           seed: int = 0, cases: Sequence[str] | None = None,
           conventions: Sequence[str] = ()) -> VerifyReport:
    """Run ``impl`` on every case of ``concept`` (or the named ``cases``) and compare it with
    both references; ``conventions`` names the ones your code follows (``cs231n.CONVENTIONS``)."""
    if dtype not in ("float64", "float32"):
        raise VerifyError(f"dtype must be float64 or float32, got {dtype!r}")
    unknown = [c for c in conventions if c not in cs231n.CONVENTIONS]
    if unknown:
        raise VerifyError(f"unknown convention {unknown[0]!r}; known: "
                          + ", ".join(cs231n.CONVENTIONS))
    label, side, resolved, selected, reference, cls = _implementation(
        impl, concept, frozenset(conventions))
    variants = [c for c in selected if c.init.get("bessel")]  # opt-in: a named convention
    if "bessel-variance" in conventions:
        if not variants:
            raise VerifyError(f"{resolved.name} has no Bessel-corrected variant; "
                              "--convention bessel-variance applies to mlp")
        selected, cls = variants, _taking(cls, "bessel")
    else:
        selected = [c for c in selected if c not in variants]
    if cases is not None:
        selected = [c for c in selected if c.name in cases]
    report = VerifyReport(concept=resolved.name, family=resolved.family, seed=seed,
                          summary=f"your {_name_of(impl)} ({label}) vs the "
                                  f"{reference.__name__} twins")
    # A concept with its own runner (optimizers, training loops) decides what its classes
    # must provide; the Module protocol and constructor checks apply to module concepts only.
    module_concept = resolved.run is None
    problem = _protocol_problem(cls, reference, side) if module_concept else ""
    cls, adapt = micrograd.adapter(resolved.name, cls)  # an engine probed for its operations
    errors = []
    for case in selected:
        if problem:
            break
        problem = _constructor_problem(cls, reference, case) if module_concept else ""
        if problem:
            break
        if dtype not in case.dtypes:
            report.skipped.append((case.name, f"the case runs in {', '.join(case.dtypes)} "
                                              "only"))
            continue
        try:
            case = adapt(case, Trial(dtype, seed)) if adapt else case
        except Skip as reason:
            report.skipped.append((case.name, str(reason)))
            continue
        tolerance = lambda check, key, name, case=case: tolerance_for(  # noqa: E731
            resolved, case, check, key, name)
        references = (resolved.run or run_module)(case, Trial(dtype, seed, builtin=False,
                                                              fd=False))
        trial = Trial(dtype, seed, builtin=False, fd=(side == "numpy"))
        runnable = checked(cls, side, references, case) if module_concept else cls
        if hasattr(cls, "record"):
            cls.record = {}
        try:
            mine, slot = _run_yours(resolved, case, trial, side, runnable)
        except VerifyError:
            raise
        except Skip as reason:
            report.skipped.append((case.name, str(reason)))
            continue
        except _UNFINISHED as error:
            report.skipped.append((case.name, "your code raised " + user_traceback(error)))
            continue
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001 -- the user's bug: reported, go on
            report.ran += 1
            errors.append(f"case {case.name!r}, {dtype}: " + problem_sentence(error,
                                                                             user_traceback))
            if isinstance(error, SystemExit):
                break  # the same exit would end every case
            continue
        report.ran += 1
        yours = getattr(mine, slot)
        truth = None
        if dtype == "float32":
            truth = (resolved.run or run_module)(case, Trial("float64", seed, data_dtype=dtype,
                                                             builtin=False, fd=False)).torch
        common = dict(case=case.name, dtype=dtype, tolerance=tolerance,
                      labels=("your implementation", "reference"),
                      optional=("inter.", "grad.inter."))  # intermediates are yours to expose
        diffs = compare_named(yours, references.numpy, check="yours-vs-numpy", **common)
        diffs += compare_named(yours, references.torch, check="yours-vs-torch", truth=truth,
                               **common)
        if side == "numpy":
            diffs += compare_fd(mine.fd, check="yours-vs-fd", case=case.name,
                                tolerance=tolerance, full=yours)
        record = getattr(cls, "record", None) or {}
        references.contributions.update(record.get("contributions", {}))
        attach_diagnoses(diffs, references, case)
        _convention_diagnoses(diffs, getattr(cls, "record", None), references, tolerance)
        note = _dtype_note(yours, getattr(references, slot), dtype)
        if note and not report.notes:
            report.notes.append(note)
        report.diffs.extend(diffs)
    if problem:
        errors.append(problem)
    report.error = "\n".join(errors)
    if variants and "bessel-variance" not in conventions and report.exit_code == 1:
        declared = verify(concept, impl, dtype=dtype, seed=seed,
                          conventions=[*conventions, "bessel-variance"])
        if declared.exit_code == 0:
            report.notes.append(f"correct under a named convention: "
                                f"{cs231n.CONVENTIONS['bessel-variance']}; declare it with "
                                "--convention bessel-variance to check it exactly")
    return report


def _taking(cls: Any, argument: str) -> Any:
    """``cls`` if it takes ``argument``; else a subclass that accepts and drops it (the
    user's class is the variant itself, e.g. the lecture's Bessel-corrected MLP)."""
    try:
        if argument in inspect.signature(cls).parameters:
            return cls
    except (TypeError, ValueError):
        return cls

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        kwargs.pop(argument, None)
        cls.__init__(self, *args, **kwargs)

    taking = type(cls.__name__, (cls,), {"__init__": __init__})
    taking.__qualname__, taking.__module__ = cls.__qualname__, cls.__module__
    return taking


def verify_file(path: str | Path, *, dtype: str = "float64", seed: int = 0,
                conventions: Sequence[str] = ()) -> list[tuple[str, VerifyReport]]:
    """Every CS231n pair and every class named after a concept's class that the file
    defines, each verified: [(what was checked, its report)]."""
    module = load_module(str(path))
    found: list[tuple[str, VerifyReport]] = []
    for layer, forward, backward in cs231n.find(vars(module)):
        impl = (forward, backward) if backward is not None else forward
        label = f"{forward.__name__}, {backward.__name__}" if backward else forward.__name__
        found.append((label, verify(layer.concept, impl, dtype=dtype, seed=seed,
                                    conventions=conventions)))
    for name, value in vars(module).items():
        if not (inspect.isclass(value) and value.__module__ == module.__name__):
            continue
        spec = _concept_for_class(value)
        if spec:
            found.append((name, verify(spec, value, dtype=dtype, seed=seed,
                                       conventions=conventions)))
    return found
