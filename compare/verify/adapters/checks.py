"""What a user's forward and backward return, checked before the engine touches it.

``checked(cls, side, references, case)`` subclasses the user's class so that ``forward`` and
``backward`` say, in one sentence, when they return None, a string, a list, an object array, a
torch tensor from a NumPy class (or the reverse), or a shape other than the reference's -- rather
than letting the engine fail later on the value with a message about itself.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from compare.concept import Case


class ReturnProblem(Exception):
    """The user's code returned something unusable; the message is the sentence."""


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype}"
    return f"a {type(value).__module__.split('.')[0] + '.' if _is_torch(value) else ''}" \
           f"{type(value).__name__}"


def _is_torch(value: Any) -> bool:
    return type(value).__module__.split(".")[0] == "torch"


def _leaves(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, tuple):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, f"{prefix}.{i}")]
    return [(prefix, value)]


def _numpy_value(owner: str, what: str, value: Any, shape: tuple[int, ...] | None) -> None:
    expected = f"an array of shape {shape}" if shape is not None else "an array"
    if _is_torch(value):
        raise ReturnProblem(f"{owner} returned a torch tensor as {what}; a NumPy class "
                            f"returns NumPy arrays ({expected})")
    if value is None or isinstance(value, (str, bytes, list, dict)):
        raise ReturnProblem(f"{owner} returned {_describe(value)} as {what}, expected {expected}")
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ReturnProblem(f"{owner} returned {what} of dtype {array.dtype}, expected "
                            f"{expected} of numbers")
    if shape is not None and array.shape != tuple(shape):
        raise ReturnProblem(f"{owner} returned {what} of shape {array.shape}, expected {shape}")


def _torch_value(owner: str, what: str, value: Any, shape: tuple[int, ...] | None) -> None:
    import torch
    expected = f"a tensor of shape {shape}" if shape is not None else "a tensor"
    if isinstance(value, np.ndarray):
        raise ReturnProblem(f"{owner} returned a NumPy array as {what}; a torch module returns "
                            f"tensors ({expected}) so that autograd can differentiate it")
    if not isinstance(value, torch.Tensor):
        raise ReturnProblem(f"{owner} returned {_describe(value)} as {what}, expected {expected}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ReturnProblem(f"{owner} returned {what} of shape {tuple(value.shape)}, expected "
                            f"{shape}")


def checked(cls: type, side: str, references: Any, case: Case) -> type:
    """A subclass of ``cls`` whose forward/backward results are checked against the shapes
    the references produced on this case."""
    expected = references.numpy
    outputs = {n: np.shape(v) for n, v in expected.items() if n == "out" or n.startswith("out.")}
    grads = [(n.removeprefix("grad.input."), np.shape(v)) for n, v in expected.items()
             if n.startswith("grad.input.")]
    check_value = _numpy_value if side == "numpy" else _torch_value

    def forward(self: Any, *inputs: Any, **kwargs: Any) -> Any:
        result = cls.forward(self, *inputs, **kwargs)
        owner = f"{cls.__name__}.forward"
        if isinstance(result, list) and "out" in outputs:
            raise ReturnProblem(f"{owner} returned a list, expected an array of shape "
                                f"{outputs['out']}")
        for name, leaf in _leaves(result, "out"):
            check_value(owner, name, leaf, outputs.get(name))
        return result

    def backward(self: Any, grad_output: Any) -> Any:
        result = cls.backward(self, grad_output)
        owner = f"{cls.__name__}.backward"
        if result is None and grads:
            raise ReturnProblem(f"{owner} returned None, expected the gradient of "
                                f"{grads[0][0]} (an array of shape {grads[0][1]})")
        values = result if isinstance(result, tuple) else (result,)
        if len(values) == len(grads):
            for (name, shape), value in zip(grads, values, strict=True):
                _numpy_value(owner, f"the gradient of {name}", value, shape)
        return result

    attributes: dict[str, Any] = {"forward": forward}
    if side == "numpy" and callable(getattr(cls, "backward", None)):
        attributes["backward"] = backward
    checked_cls = type(cls.__name__, (cls,), attributes)
    checked_cls.__qualname__ = cls.__qualname__
    checked_cls.__module__ = cls.__module__
    return checked_cls


def problem_sentence(error: BaseException, traceback_of: Any) -> str:
    """What went wrong in the user's code, for the report: one sentence where we know it."""
    from compare.verify.adapters.cs231n import CodeProblem
    if isinstance(error, (ReturnProblem, CodeProblem)):
        return str(error)
    if isinstance(error, SystemExit):
        return (f"your code called sys.exit({error.code!r}); code under test must return or "
                "raise, not exit")
    return "your code raised " + traceback_of(error)
