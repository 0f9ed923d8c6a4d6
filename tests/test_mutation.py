"""Every implementation slot of every concept is really used by ``verify``: a mutation test.

For each concept in the registry and each slot ``verify`` accepts -- the NumPy class (or
function), the torch class (or function), and a (forward, backward) pair for parameter-free
module concepts -- a wrong implementation is derived from the library's own reference,
automatically, and ``verify`` must reject it with a mismatch (not a crash) on the
``yours-vs-*`` checks, naming the tensors that differ:

- ``scaled``: the reference with its results perturbed -- every floating-point value a method
  returns times 1.25 (integer sequences reversed), its floating-point state (parameters,
  numbers set in the constructor) times 1.25, an optimizer's gradients times 1.25 before each
  step, a scheduler's learning rates times 1.25 after each step;
- ``backward`` (NumPy modules): the reference with the first gradient its ``backward``
  returns times 1.25 and nothing else, which must fail on gradients, never on a forward
  output.

A runner that silently falls back to the library's own twin compares the twin with itself and
lets the mutant pass: this test fails for it. A concept merged later is covered without a new
test, since everything here is derived from the registry.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any

import numpy as np
import pytest
import torch

from compare import registry
from compare.report import split_step
from compare.verify import verify

FACTOR = 1.25
OUTPUT_METHODS = ("forward", "encode", "nll", "get_lr", "__call__")


def perturb(value: Any) -> Any:
    """A result made wrong: floats (and scalar-engine nodes) times FACTOR, integer sequences
    reversed, tuples and lists element by element; anything else unchanged."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            return value * FACTOR
        return value.flip(-1) if value.ndim and value.shape[-1] > 1 else value
    if isinstance(value, np.ndarray):
        if np.issubdtype(value.dtype, np.floating):
            return (value * FACTOR).astype(value.dtype)
        return value[..., ::-1].copy() if value.ndim and value.shape[-1] > 1 else value
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
        return type(value)(value * FACTOR)
    if isinstance(value, list) and len(value) > 1 and all(isinstance(v, int) for v in value):
        return value[::-1]
    if isinstance(value, (tuple, list)):
        return type(value)(perturb(v) for v in value)
    if hasattr(value, "data") and hasattr(value, "grad") and hasattr(value, "__mul__"):
        return value * FACTOR  # a node of a scalar autograd engine (micrograd's Value)
    return value


def _perturb_state(obj: Any) -> None:
    """Floating-point numbers and arrays set by the constructor, and every parameter, x FACTOR."""
    for name, value in list(vars(obj).items()):
        if isinstance(value, (float, np.floating, np.ndarray)) and not isinstance(value, bool):
            if np.issubdtype(np.asarray(value).dtype, np.floating):
                object.__setattr__(obj, name, perturb(value))
    if isinstance(obj, torch.nn.Module):
        with torch.no_grad():
            for p in obj.parameters():
                p.mul_(FACTOR)
    elif callable(getattr(obj, "parameters", None)) and not hasattr(obj, "param_groups"):
        for p in obj.parameters():
            if hasattr(p, "data") and isinstance(p.data, np.ndarray):
                p.data *= FACTOR
            elif hasattr(p, "data") and isinstance(p.data, (float, np.floating)):
                p.data = p.data * FACTOR


def _is_iterator(value: Any) -> bool:
    return hasattr(value, "__next__") or isinstance(value, (list, tuple)) and any(
        hasattr(v, "grad") for v in value)


def _perturb_gradients(args: tuple) -> None:
    """Gradients a function changed in place (parameters in a list argument) x FACTOR."""
    for arg in args:
        for p in (arg if isinstance(arg, list) else [arg]):
            grad = getattr(p, "grad", None)
            if isinstance(grad, torch.Tensor):
                grad.mul_(FACTOR)
            elif isinstance(grad, np.ndarray) and np.issubdtype(grad.dtype, np.floating):
                grad *= FACTOR


def _scaled_step(step: Any) -> Any:
    @functools.wraps(step)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        if hasattr(self, "param_groups"):  # an optimizer: wrong gradients in
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad = p.grad * FACTOR
        result = step(self, *args, **kwargs)
        if hasattr(getattr(self, "optimizer", None), "param_groups"):  # a scheduler: wrong lr out
            for group in self.optimizer.param_groups:
                group["lr"] = group["lr"] * FACTOR
        return result
    return wrapped


def _scaled_output(method: Any, floats_only: bool = False) -> Any:
    @functools.wraps(method)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        return _perturb_floats(result) if floats_only else perturb(result)
    return wrapped


def _perturb_floats(value: Any) -> Any:
    """Like ``perturb`` for floating-point results only: a helper's integers (sizes, counts,
    indices) stay as they are, so the mutant computes a wrong answer rather than crashing."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and not (
            value.is_floating_point() if isinstance(value, torch.Tensor)
            else np.issubdtype(value.dtype, np.floating)):
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(_perturb_floats(v) for v in value)
    if isinstance(value, dict):
        return {k: _perturb_floats(v) for k, v in value.items()}
    if isinstance(value, (int, np.integer)) or isinstance(value, bool):
        return value
    return perturb(value)


def _named_like(mutant: type, reference: type) -> type:
    mutant.__name__, mutant.__qualname__ = reference.__name__, reference.__qualname__
    mutant.__module__ = reference.__module__  # verify tells torch from NumPy by it, too
    return mutant


def scaled(reference: Any) -> Any:
    """The ``scaled`` mutant of a class or a function."""
    if not inspect.isclass(reference):
        @functools.wraps(reference)
        def function(*args: Any, **kwargs: Any) -> Any:
            # an iterable argument (parameters) is materialized so that what the function did
            # to it in place (clip_grad_value_ returns None) can be made wrong too
            args = tuple(list(a) if _is_iterator(a) else a for a in args)
            result = perturb(reference(*args, **kwargs))
            _perturb_gradients(args)
            return result
        return function
    members: dict[str, Any] = {}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        reference.__init__(self, *args, **kwargs)
        _perturb_state(self)
    members["__init__"] = __init__
    # the methods that produce results: the usual entry points; and for a class that inherits
    # its forward and adds methods of its own (an analysis on top of a model), those methods:
    # the concept's runner calls them, not forward. (A torch class is caught through its
    # parameters; scaling its cached tensors would cut them out of the autograd graph.)
    extends_a_model = "forward" in dir(reference) and "forward" not in vars(reference) \
        and not issubclass(reference, torch.nn.Module)
    own = [n for n, v in vars(reference).items() if callable(v) and not n.startswith("_")
           and n not in ("step", "backward") and not isinstance(v, (staticmethod, classmethod))
           ] if extends_a_model else []
    for name in dict.fromkeys([*OUTPUT_METHODS, *own]):
        defined = next((k.__dict__[name] for k in reference.__mro__ if name in k.__dict__), None)
        if callable(defined) and not (name == "__call__" and (
                issubclass(reference, torch.nn.Module) or "forward" in dir(reference))):
            members[name] = _scaled_output(defined, floats_only=name not in OUTPUT_METHODS)
    if callable(getattr(reference, "step", None)):
        members["step"] = _scaled_step(reference.step)
    return _named_like(type(reference.__name__, (reference,), members), reference)


def backward_mutant(reference: type) -> type:
    """The NumPy reference with only its first returned gradient times FACTOR (the first
    parameter's gradient where it returns none: an embedding's integer input has none)."""
    def backward(self: Any, grad_output: Any) -> Any:
        grads = reference.backward(self, grad_output)
        if isinstance(grads, tuple) and grads:
            return (perturb(grads[0]), *grads[1:])
        if grads is not None and not isinstance(grads, tuple):
            return perturb(grads)
        first = next(p for _, p in self.named_parameters())
        first.grad = perturb(first.grad)
        return grads
    return _named_like(type(reference.__name__, (reference,), {"backward": backward}), reference)


def pair_of(reference: type, mutate_forward: bool) -> tuple[Any, Any]:
    """A (forward, backward) function pair built on a parameter-free NumPy reference."""
    def forward(*inputs: Any, **arguments: Any) -> tuple[Any, Any]:
        module = reference(**{k: np.asarray(v) if isinstance(v, np.ndarray) else v
                              for k, v in arguments.items()})
        out = module(*inputs)
        return (perturb(out) if mutate_forward else out), module

    def backward(grad_output: Any, module: Any) -> Any:
        return module.backward(grad_output)
    forward.__name__ = f"{reference.__name__.lower()}_forward"
    return forward, backward


# --- the slots: derived from the registry ---------------------------------------------------
def _slots() -> list[Any]:
    slots = []
    for concept in registry.concepts().values():
        for side in ("numpy", "torch"):
            seen: dict[str, Any] = {}
            for case in concept.cases:
                reference = getattr(case, side)
                if reference is not None:
                    seen.setdefault(reference.__name__, reference)
            for name, reference in seen.items():
                slots.append(pytest.param(concept.name, side, name, "scaled",
                                          id=f"{concept.name}-{side}-{name}-scaled"))
                if side == "numpy" and concept.run is None and inspect.isclass(reference):
                    slots.append(pytest.param(concept.name, side, name, "backward",
                                              id=f"{concept.name}-numpy-{name}-backward"))
                    if not any(True for _ in _instance(concept, reference).named_parameters()):
                        slots.append(pytest.param(concept.name, "pair", name, "scaled",
                                                  id=f"{concept.name}-pair-{name}-scaled"))
    return slots


def _instance(concept: Any, reference: type) -> Any:
    case = next(c for c in concept.cases if c.numpy is reference)
    return reference(**case.init)


@pytest.mark.parametrize("concept_name, side, class_name, mutation", _slots())
def test_a_derived_wrong_implementation_fails_verify(concept_name: str, side: str,
                                                      class_name: str, mutation: str) -> None:
    concept = registry.get(concept_name)
    attribute = "numpy" if side == "pair" else side
    reference = next(getattr(c, attribute) for c in concept.cases
                     if getattr(c, attribute) is not None
                     and getattr(c, attribute).__name__ == class_name)
    if side == "pair":
        impl: Any = pair_of(reference, mutate_forward=True)
    elif mutation == "backward":
        impl = backward_mutant(reference)
    else:
        impl = scaled(reference)
    report = verify(f"{concept_name}:{class_name}", impl)  # every case: runners branch by case
    assert not report.error, f"the mutant crashed instead of mismatching: {report.error}"
    failing = [d for d in report.failures if d.check.startswith("yours-vs-")]
    assert failing, f"{concept_name}: a wrong {side} {class_name} ({mutation}) passed verify"
    assert any(d.check == "yours-vs-torch" for d in failing), \
        f"{concept_name}: the mutant is not caught against the torch twin"
    table = report.table()
    for d in failing:
        assert d.name and split_step(d.name)[0] in table
    if mutation == "backward":  # a wrong backward is a wrong gradient, never a wrong output
        assert all(split_step(d.name)[0].startswith("grad") for d in failing
                   if split_step(d.name)[1] is None), [d.name for d in failing]
        assert any(d.name.startswith("grad") for d in failing)


def test_the_unmutated_references_pass_verify() -> None:
    """The control: the same derivations without the mutation agree (a few slots suffice)."""
    from numpy_impl.layers.activations import ReLU
    assert verify("activations:ReLU", pair_of(ReLU, mutate_forward=False)).passed
    for concept_name, class_name in (("optimizers", "Adam"), ("lr_schedules", "StepLR")):
        concept = registry.get(concept_name)
        reference = next(c.torch for c in concept.cases if c.torch.__name__ == class_name)
        twin = _named_like(type(class_name, (reference,), {}), reference)
        assert verify(f"{concept_name}:{class_name}", twin).passed
