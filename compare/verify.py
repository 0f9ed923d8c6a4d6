"""Verify your own implementation of a concept against both references.

    from compare import verify
    report = verify("layernorm", MyLayerNorm)          # a NumPy class, a torch.nn.Module class,
    print(report)                                       # or a (forward, backward) function pair
    assert report.passed

Your implementation runs on every case of the concept (edge cases included), with the same
inputs, weights and upstream gradients as the references, and every tensor is compared by name:

- ``yours-vs-numpy`` and ``yours-vs-torch``: against the library's NumPy twin and torch twin;
- ``yours-vs-fd``: a NumPy implementation's backward against finite differences (float64).

Each mismatching tensor carries a diagnosis (``compare.diagnose``); concepts with named
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

A concept with several classes (``activations``: ReLU, GELU, ...) takes the class after a colon,
``"activations:GELU"``; without it the class whose name appears in your implementation's name
is chosen (``MyGelu`` -> GELU).
"""
from __future__ import annotations

import inspect
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compare import registry
from compare.concept import Case, Concept, Trial
from compare.report import Diff, Report
from compare.runner import attach_diagnoses, compare_fd, compare_named, run_module, tolerance_for

_ENGINE_DIRS = tuple(str(Path(__file__).resolve().parent.parent / tree)
                     for tree in ("compare", "numpy_impl", "torch_impl"))
_PROTOCOL = ("forward", "backward", "load_state_dict", "named_parameters", "named_buffers",
             "train", "to")


class VerifyError(Exception):
    """The request itself is wrong (unknown concept, ambiguous class, not an implementation)."""


def _library_dirs() -> tuple[str, ...]:
    """Frames inside these are the engine's or a library's, never the user's."""
    import torch
    return _ENGINE_DIRS + (str(Path(np.__file__).parent), str(Path(torch.__file__).parent),
                           str(Path(inspect.__file__).parent))


def user_traceback(error: BaseException) -> str:
    """The exception with only the user's own frames (not the engine's, NumPy's or torch's)."""
    library = _library_dirs()
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith(library)]
    lines = [f"{type(error).__name__}: {error}"]
    for frame in frames:
        lines.append(f"  File \"{frame.filename}\", line {frame.lineno}, in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line}")
    return "\n".join(lines)


def _kind(impl: Any) -> str:
    if isinstance(impl, tuple) and len(impl) == 2 and all(callable(f) for f in impl):
        return "pair"
    if inspect.isclass(impl) or inspect.isfunction(impl):
        return _side(impl)
    raise VerifyError(f"expected a NumPy Module class, a torch.nn.Module class or a "
                      f"(forward, backward) pair of functions, got {type(impl).__name__} "
                      f"{impl!r}")


def _side(impl: Any) -> str:
    """"torch" or "numpy": which twin a class or function stands in for. A torch base class
    (nn.Module, torch.optim.Optimizer, ...) says torch, a numpy_impl base says NumPy; a plain
    class or function is torch's when the module defining it uses torch."""
    roots = [base.__module__.split(".")[0] for base in inspect.getmro(impl)[1:]] \
        if inspect.isclass(impl) else []
    if "torch" in roots:
        return "torch"
    if "numpy_impl" in roots:
        return "numpy"
    module = inspect.getmodule(impl)
    uses_torch = any(getattr(value, "__name__", "").split(".")[0] == "torch"
                     and (inspect.ismodule(value) or inspect.isclass(value))
                     for value in vars(module).values()) if module else False
    return "torch" if uses_torch else "numpy"


def _name_of(impl: Any) -> str:
    return impl[0].__name__ if isinstance(impl, tuple) else impl.__name__


def select_cases(spec: str | Concept, own_name: str,
                 side: str = "numpy") -> tuple[Concept, list[Case], type]:
    """The concept, the cases that exercise one reference class, and that class: the one
    named after a colon, the only one, or the one whose name ``own_name`` contains."""
    if isinstance(spec, Concept):
        concept, wanted = spec, None
    else:
        name, _, wanted = spec.partition(":")
        try:
            concept = registry.get(name)
        except registry.UnknownConcept as error:
            raise VerifyError(str(error)) from None
    classes: dict[str, type] = {}
    for case in concept.cases:
        cls = getattr(case, side)
        if cls is not None:
            classes.setdefault(cls.__name__, cls)
    if not classes:
        raise VerifyError(f"{concept.name} has no {side} reference class to verify against")
    if wanted:
        if wanted not in classes:
            raise VerifyError(f"{concept.name} has no class {wanted!r}; its classes: "
                              + ", ".join(classes))
        chosen = wanted
    elif len(classes) == 1:
        chosen = next(iter(classes))
    else:
        own = own_name.lower().replace("_", "")  # my_log_softmax -> LogSoftmax, mse -> MSELoss
        matches = sorted((c for c in classes if c.lower().removesuffix("loss") in own),
                         key=len, reverse=True)
        if not matches:
            raise VerifyError(f"{concept.name} has several classes ({', '.join(classes)}); "
                              f"say which, e.g. '{concept.name}:{next(iter(classes))}'")
        chosen = matches[0]
    cases = [c for c in concept.cases if getattr(c, side) is classes[chosen]]
    return concept, cases, classes[chosen]


def _protocol_problem(impl: type, reference: type, side: str) -> str:
    """One sentence if the class cannot stand in for the reference, else ''."""
    required = ("forward",) if side == "torch" else _PROTOCOL
    missing = [m for m in required if not callable(getattr(impl, m, None))]
    if missing:
        hint = ("subclass numpy_impl.Module (from numpy_impl import Module) and define forward "
                "and backward" if side == "numpy" else "define forward")
        return f"{impl.__name__} has no {', '.join(m + '()' for m in missing)}: {hint}"
    return ""


def _constructor_problem(impl: type, reference: type, case: Case) -> str:
    try:
        inspect.signature(impl).bind(**case.init)
    except TypeError as error:
        arguments = ", ".join(f"{k}={v!r}" for k, v in case.init.items())
        return (f"{impl.__name__}({arguments}) cannot be called ({error}); it must take the "
                f"reference's arguments: {reference.__name__}{inspect.signature(reference)}")
    except ValueError:  # no signature to inspect (a builtin): let the call itself tell
        pass
    return ""


def function_pair_class(reference: type, forward: Callable, backward: Callable) -> type:
    """A Module class around a ``(forward, backward)`` pair: it keeps the reference's
    constructor and buffers (class weights, ...) and hands its constructor arguments -- with
    buffers as arrays -- to ``forward`` as keyword arguments."""

    class FunctionPair(reference):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            if any(True for _ in self.named_parameters()):
                raise VerifyError(f"{reference.__name__} has parameters: a (forward, backward) "
                                  "pair is for parameter-free concepts; write a class")
            self._arguments = kwargs

        def forward(self, *inputs: Any) -> Any:
            arguments = {k: getattr(self, k) if k in self._buffer_names else v
                         for k, v in self._arguments.items()}
            result = forward(*inputs, **arguments)
            if not (isinstance(result, tuple) and len(result) == 2):
                raise TypeError(f"{forward.__name__} must return (out, cache), got "
                                f"{type(result).__name__}")
            out, self._pair_cache = result
            return out

        def backward(self, grad_output: Any) -> Any:
            return backward(grad_output, self._pair_cache)

    FunctionPair.__name__ = FunctionPair.__qualname__ = forward.__name__
    return FunctionPair


def _dtype_problems(diffs: list[Diff], yours: dict[str, np.ndarray],
                    reference: dict[str, np.ndarray], dtype: str) -> None:
    """A floating-point tensor in another dtype than the reference's fails, with a sentence."""
    for d in diffs:
        a, b = yours.get(d.name), reference.get(d.name)
        if a is None or b is None or not np.issubdtype(np.asarray(b).dtype, np.floating):
            continue
        a_dtype, b_dtype = np.asarray(a).dtype, np.asarray(b).dtype
        if a_dtype != b_dtype:
            d.passed = False
            d.diagnosis = (f"dtype {a_dtype}, expected {b_dtype}: in a {dtype} run every "
                           f"floating-point result stays {b_dtype} (a {a_dtype} constant or "
                           "array promoted it?)")


def _run_yours(concept: Concept, case: Case, trial: Trial, side: str, impl: type):
    run = concept.run or run_module
    if side == "torch":
        return run(case, trial, torch_cls=impl), "torch"
    return run(case, trial, numpy_cls=impl), "numpy"


def verify(concept: str | Concept, impl: Any, *, dtype: str = "float64",
           seed: int = 0, cases: Sequence[str] | None = None) -> Report:
    """Run ``impl`` on every case of ``concept`` (or the named ``cases``) and compare it with
    both references."""
    if dtype not in ("float64", "float32"):
        raise VerifyError(f"dtype must be float64 or float32, got {dtype!r}")
    kind = _kind(impl)
    side = "torch" if kind == "torch" else "numpy"
    if kind != "pair" and inspect.isfunction(impl):
        kind = "function"  # a function-valued reference (gradient_descent's least_squares)
    resolved, selected, reference = select_cases(concept, _name_of(impl), side)
    if cases is not None:
        selected = [c for c in selected if c.name in cases]
    if inspect.isfunction(impl) and inspect.isclass(reference):
        raise VerifyError(f"{_name_of(impl)} is a function, but {resolved.name}'s reference "
                          f"{reference.__name__} is a class: write a class, or a (forward, "
                          "backward) pair for a parameter-free concept")
    label = {"pair": "function pair", "numpy": "NumPy class", "torch": "torch module",
             "function": f"{'torch' if side == 'torch' else 'NumPy'} function"}[kind]
    report = Report(concept=resolved.name, family=resolved.family, seed=seed,
                    summary=f"your {_name_of(impl)} ({label}) vs the {reference.__name__} twins")
    cls = function_pair_class(reference, *impl) if kind == "pair" else impl
    # A concept with its own runner (optimizers, training loops) decides what its classes
    # must provide; the Module protocol and constructor checks apply to module concepts only.
    module_concept = resolved.run is None
    problem = _protocol_problem(cls, reference, side) if module_concept else ""
    for case in selected:
        if problem:
            break
        problem = _constructor_problem(cls, reference, case) if module_concept else ""
        if problem:
            break
        tolerance = lambda check, key, name, case=case: tolerance_for(  # noqa: E731
            resolved, case, check, key, name)
        references = (resolved.run or run_module)(case, Trial(dtype, seed, builtin=False,
                                                              fd=False))
        trial = Trial(dtype, seed, builtin=False, fd=(side == "numpy"))
        try:
            mine, slot = _run_yours(resolved, case, trial, side, cls)
        except VerifyError:
            raise
        except Exception as error:  # noqa: BLE001 -- the user's bug, reported as a failure
            report.error = f"case {case.name!r}, {dtype}: your code raised " \
                           + user_traceback(error)
            return report
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
        attach_diagnoses(diffs, references, case)
        _dtype_problems(diffs, yours, getattr(references, slot), dtype)  # same-side dtypes
        report.diffs.extend(diffs)
    if problem:
        report.error = problem
    return report


def load(spec: str) -> Any:
    """``path/to/file.py:Name`` (a class) or ``path/to/file.py:forward,backward`` (a pair)."""
    import importlib.util
    path_text, _, names = spec.rpartition(":")
    if not path_text or not names:
        raise VerifyError(f"expected FILE.py:NAME (or FILE.py:FORWARD,BACKWARD), got {spec!r}")
    path = Path(path_text)
    if not path.is_file():
        raise VerifyError(f"no such file: {path}")
    module_name = f"dualgrad_user_{abs(hash(path.resolve()))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise VerifyError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # as an import would: dataclasses, pickle need it
    try:
        loader_spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 -- the user's file does not import
        del sys.modules[module_name]
        raise VerifyError(f"cannot import {path}: {user_traceback(error)}") from None
    found = []
    for name in names.split(","):
        if not hasattr(module, name):
            available = [n for n, v in vars(module).items()
                         if not n.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))
                         and getattr(v, "__module__", None) == module_name]
            raise VerifyError(f"{path} defines no {name!r}; it defines: "
                              + (", ".join(available) or "nothing usable"))
        found.append(getattr(module, name))
    return tuple(found) if len(found) > 1 else found[0]
