"""Your code, as verify receives it: load a file or module (``load``, ``load_module``), tell
what an implementation is (a NumPy class, a torch module, a function pair) and which twin it
stands in for, pick the concept's cases and reference class it answers to, check that it can
stand in for that class (the Module protocol, the constructor), wrap a ``(forward, backward)``
pair as a Module class, and show an error with only your own frames (``user_traceback``).
``compare.verify.check`` runs it and reports.
"""
from __future__ import annotations

import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from compare import registry
from compare.concept import Case, Concept
from compare.verify.adapters import Skip
from compare.verify.adapters.checks import ReturnProblem

_ENGINE_DIRS = tuple(str(Path(__file__).resolve().parent.parent.parent / tree)
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
    """The exception with only the user's own frames (not the engine's, NumPy's or torch's);
    a frame repeated without end (infinite recursion) is shown once, with its count."""
    library = _library_dirs()
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith(library)]
    message = f"{type(error).__name__}: {error}"
    if isinstance(error, RecursionError) and frames:
        where = max({(f.filename, f.lineno, f.name) for f in frames},
                    key=lambda k: sum((f.filename, f.lineno, f.name) == k for f in frames))
        count = sum((f.filename, f.lineno, f.name) == where for f in frames)
        return (f"{message}: {where[2]} calls itself without end (File \"{where[0]}\", line "
                f"{where[1]}, repeated {count} times)")
    lines = [message]
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
    """"torch" or "numpy": which twin a class or function stands in for, decided from the
    code itself, never from what its file imports: a torch base class (nn.Module,
    torch.optim.Optimizer, ...) says torch; otherwise a class or function is torch's when its
    own code calls torch (``torch.zeros``, ``F.relu``) or its annotations name it. A function
    written only with tensor methods names torch nowhere: there its file's import decides."""
    if inspect.isclass(impl):
        roots = [base.__module__.split(".")[0] for base in inspect.getmro(impl)[1:]]
        if "torch" in roots:
            return "torch"
        # inherited methods count: a subclass of the torch twin that adds nothing is torch's
        functions = [v for c in inspect.getmro(impl) if c.__module__ != "builtins"
                     for v in vars(c).values() if inspect.isfunction(v)]
        return "torch" if any(_calls_torch(f) for f in functions) else "numpy"
    if _calls_torch(impl):
        return "torch"
    module = inspect.getmodule(impl)  # by __module__: a functools.wraps copy keeps its own
    imported = any(inspect.ismodule(v) and v.__name__.split(".")[0] == "torch"
                   for v in vars(module).values()) if module else False
    return "torch" if imported else "numpy"


def _calls_torch(function: Any) -> bool:
    """Whether a function's code (nested lambdas and comprehensions included) reads a global
    that is torch or part of it, or its annotations name torch."""
    module_globals = getattr(function, "__globals__", {})

    def names(code: Any) -> set[str]:
        found = set(code.co_names)
        for const in code.co_consts:
            if inspect.iscode(const):
                found |= names(const)
        return found

    code = getattr(function, "__code__", None)
    for name in names(code) if code is not None else ():
        value = module_globals.get(name)
        if getattr(value, "__name__", "").split(".")[0] == "torch" or \
                getattr(value, "__module__", "") and \
                str(getattr(value, "__module__", "")).split(".")[0] == "torch":
            return True
    return any("torch" in str(a) for a in getattr(function, "__annotations__", {}).values())


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
    """A Module class around a ``(forward, backward)`` pair of a parameter-free concept: it
    keeps the reference's constructor and buffers (class weights, ...) and hands the
    constructor arguments ``forward`` accepts -- buffers as arrays -- as keyword arguments; a
    case setting one it does not accept is skipped."""
    try:
        accepted = inspect.signature(forward).parameters
    except ValueError:
        accepted = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    defaults = {name: p.default for name, p in inspect.signature(reference).parameters.items()
                if p.default is not inspect.Parameter.empty}

    class FunctionPair(reference):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            if any(True for _ in self.named_parameters()):
                raise VerifyError(f"{reference.__name__} has parameters: a (forward, backward) "
                                  "pair is recognised for them only under the CS231n names "
                                  "(affine_forward, batchnorm_forward, ...); write a class")
            for name, value in kwargs.items():
                if not takes_any and name not in accepted and not _same(value,
                                                                        defaults.get(name)):
                    raise Skip(f"{forward.__name__} takes no {name!r} (the case sets "
                               f"{name}={value!r})")
            self._arguments = {k: v for k, v in kwargs.items() if takes_any or k in accepted}

        def forward(self, *inputs: Any) -> Any:
            arguments = {k: getattr(self, k) if k in self._buffer_names else v
                         for k, v in self._arguments.items()}
            result = forward(*inputs, **arguments)
            if not (isinstance(result, tuple) and len(result) == 2):
                raise ReturnProblem(f"{forward.__name__} returned "
                                    f"{type(result).__name__}, expected (out, cache)")
            out, self._pair_cache = result
            return out

        def backward(self, grad_output: Any) -> Any:
            return backward(grad_output, self._pair_cache)

    FunctionPair.__name__ = FunctionPair.__qualname__ = forward.__name__
    return FunctionPair


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(a == b)) if a is not None or b is not None else True
    except (TypeError, ValueError):
        return False


def _concept_for_class(cls: type) -> str:
    """``concept:Class`` whose reference class name the user's class name contains (the
    longest such name), or ''."""
    side = _side(cls)
    own = cls.__name__.lower()
    best = ""
    for concept in registry.concepts().values():
        for case in concept.cases:
            reference = getattr(case, side)
            if reference is not None and reference.__name__.lower() in own \
                    and len(reference.__name__) > len(best.partition(":")[2]):
                best = f"{concept.name}:{reference.__name__}"
    return best


def load_module(location: str) -> Any:
    """A user's file (``path/to/file.py``, its folder put on ``sys.path`` so that it can
    import its siblings) or module (``pkg.module``, from the current directory)."""
    import importlib
    import importlib.util
    path = Path(location)
    if not path.is_file():
        dotted = location.replace(".", "").replace("_", "").isalnum() and not location.endswith(
            ".py")
        if not dotted:
            raise VerifyError(f"no such file: {path}")
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        try:
            return importlib.import_module(location)
        except ModuleNotFoundError as error:
            if error.name and location.startswith(error.name):
                raise VerifyError(f"no such file or module: {location}") from None
            raise VerifyError(f"cannot import {location}: {user_traceback(error)}") from None
        except SystemExit as error:
            raise VerifyError(f"cannot import {location}: it calls sys.exit({error.code!r}) at "
                              "import; put script code under if __name__ == '__main__':") \
                from None
        except Exception as error:  # noqa: BLE001 -- the user's module does not import
            raise VerifyError(f"cannot import {location}: {user_traceback(error)}") from None
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_name = f"dualgrad_user_{abs(hash(path.resolve()))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise VerifyError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # as an import would: dataclasses, pickle need it
    try:
        loader_spec.loader.exec_module(module)
    except SystemExit as error:
        del sys.modules[module_name]
        raise VerifyError(f"cannot import {path}: it calls sys.exit({error.code!r}) at import; "
                          "put script code under if __name__ == '__main__':") from None
    except Exception as error:  # noqa: BLE001 -- the user's file does not import
        del sys.modules[module_name]
        raise VerifyError(f"cannot import {path}: {user_traceback(error)}") from None
    return module


def load(spec: str) -> Any:
    """``path/to/file.py:Name`` (a class), ``path/to/file.py:forward,backward`` (a pair), or
    ``pkg.module:Name`` for code inside a package."""
    location, _, names = spec.rpartition(":")
    if not location or not names:
        raise VerifyError(f"expected FILE.py:NAME (or FILE.py:FORWARD,BACKWARD), got {spec!r}")
    module = load_module(location)
    found = []
    for name in names.split(","):
        if not hasattr(module, name):
            available = [n for n, v in vars(module).items()
                         if not n.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))
                         and getattr(v, "__module__", None) == module.__name__]
            raise VerifyError(f"{location} defines no {name!r}; it defines: "
                              + (", ".join(available) or "nothing usable"))
        found.append(getattr(module, name))
    return tuple(found) if len(found) > 1 else found[0]
