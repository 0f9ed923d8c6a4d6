"""The NumPy module protocol: ``Parameter`` and ``Module``, shaped like ``torch.nn``.

A ``Module`` registers what is assigned to it, as torch does: a ``Parameter`` becomes a
parameter, a ``Module`` a submodule, and ``register_buffer`` adds state such as running
statistics. Names are dotted paths (``blocks.0.fc.weight``), identical to the torch twin's,
so weights move between the twins with ``state_dict`` / ``load_state_dict`` alone.

The difference from torch: there is no autograd. ``forward`` caches what ``backward`` needs;
``backward(grad_output)`` returns the gradient with respect to each floating-point input (a
tuple if there are several, ``None`` if there are none) and *adds* parameter gradients into
``p.grad``, so gradients accumulate across calls until ``zero_grad`` -- as in torch.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from numpy_impl.random import default_dtype


class Parameter:
    """An array and its gradient (``grad`` has the same shape and dtype, zeros until backward)."""

    def __init__(self, data: Any) -> None:
        data = np.array(data, copy=True)
        if not np.issubdtype(data.dtype, np.floating):
            data = data.astype(default_dtype())
        self.data: np.ndarray = data
        self.grad: np.ndarray = np.zeros_like(data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


def to_numpy(value: Any) -> np.ndarray:
    """An ndarray from an ndarray or a torch tensor (duck-typed: numpy_impl never imports torch)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class Module:
    """Base class of every NumPy twin. Subclasses define ``forward`` and ``backward``."""

    training: bool

    def __init__(self) -> None:
        # Registries hold names in registration order; values live as ordinary attributes,
        # so `self.weight` is a plain attribute read and reassigning it keeps it registered.
        object.__setattr__(self, "_parameter_names", [])
        object.__setattr__(self, "_module_names", [])
        object.__setattr__(self, "_buffer_names", [])
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameter_names" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called "
                f"(call super().__init__() first in {type(self).__name__}.__init__)"
            )
        if isinstance(value, Parameter) and name not in self._parameter_names:
            self._parameter_names.append(name)
        elif isinstance(value, Module) and name not in self._module_names:
            self._module_names.append(name)
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, array: Any, persistent: bool = True) -> None:
        """Register state that is saved in ``state_dict`` but is not a parameter (or ``None``)."""
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        if not persistent:
            self._non_persistent.add(name)
        object.__setattr__(self, name, None if array is None else np.asarray(array))

    # --- the computation: subclasses define forward(*inputs) and backward(grad_output) ------
    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        return self.forward(*inputs, **kwargs)

    # --- traversal --------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name in self._module_names:
            child = getattr(self, name)
            if child is not None:
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Parameters with dotted names, each shared parameter once (as torch does)."""
        seen: set[int] = set()
        for prefix, module in self.named_modules():
            for name in module._parameter_names:
                param = getattr(module, name)
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{prefix}.{name}" if prefix else name), param

    def parameters(self) -> Iterator[Parameter]:
        for _, param in self.named_parameters():
            yield param

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        for prefix, module in self.named_modules():
            for name in module._buffer_names:
                value = getattr(module, name)
                if value is not None:
                    yield (f"{prefix}.{name}" if prefix else name), value

    # --- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and persistent buffer, in torch's order and with its names."""
        state: dict[str, np.ndarray] = {}
        for prefix, module in self.named_modules():
            dot = f"{prefix}." if prefix else ""
            for name in module._parameter_names:
                param = getattr(module, name)
                if param is not None:
                    state[dot + name] = param.data.copy()
            for name in module._buffer_names:
                value = getattr(module, name)
                if value is not None and name not in module._non_persistent:
                    state[dot + name] = np.array(value, copy=True)
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Copy values in (ndarrays or torch tensors); each keeps its own dtype, as in torch.

        Raises RuntimeError naming every missing key, unexpected key and shape mismatch.
        """
        slots = self._state_slots()
        given = {key: to_numpy(value) for key, value in state_dict.items()}
        problems = []
        missing = [key for key in slots if key not in given]
        unexpected = [key for key in given if key not in slots]
        if strict and missing:
            problems.append("missing key(s): " + ", ".join(repr(k) for k in missing))
        if strict and unexpected:
            problems.append("unexpected key(s): " + ", ".join(repr(k) for k in unexpected))
        for key, value in given.items():
            if key in slots and value.shape != slots[key][2].shape:
                problems.append(
                    f"shape mismatch for {key!r}: the model has {tuple(slots[key][2].shape)}, "
                    f"the state_dict has {tuple(value.shape)}"
                )
        if problems:
            raise RuntimeError(
                f"error loading state_dict into {type(self).__name__}: " + "; ".join(problems)
            )
        for key, value in given.items():
            if key in slots:
                slots[key][2][...] = value  # in place: the slot keeps its dtype

    def _state_slots(self) -> dict[str, tuple[Module, str, np.ndarray]]:
        slots = {}
        for prefix, module in self.named_modules():
            dot = f"{prefix}." if prefix else ""
            for name in module._parameter_names:
                param = getattr(module, name)
                if param is not None:
                    slots[dot + name] = (module, name, param.data)
            for name in module._buffer_names:
                value = getattr(module, name)
                if value is not None and name not in module._non_persistent:
                    slots[dot + name] = (module, name, value)
        return slots

    # --- modes, gradients, dtypes -----------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.grad = np.zeros_like(param.data)

    def to(self, dtype: Any) -> Module:
        """Cast floating-point parameters (with their grads) and buffers to ``dtype``."""
        dtype = np.dtype(dtype)
        for module in self.modules():
            for name in module._parameter_names:
                param = getattr(module, name)
                if param is not None:
                    param.data = param.data.astype(dtype)
                    param.grad = param.grad.astype(dtype)
            for name in module._buffer_names:
                value = getattr(module, name)
                if value is not None and np.issubdtype(value.dtype, np.floating):
                    object.__setattr__(module, name, value.astype(dtype))
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    def __repr__(self) -> str:
        children = "".join(f"\n  ({name}): {child!r}".replace("\n", "\n  ")
                           for name, child in self.named_children())
        return f"{type(self).__name__}({self.extra_repr()}{children}{chr(10) if children else ''})"

    def extra_repr(self) -> str:
        return ""


class ModuleList(Module):
    """A list of submodules named ``0``, ``1``, ... (as ``torch.nn.ModuleList``)."""

    def __init__(self, modules: Any = ()) -> None:
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        setattr(self, str(len(self)), module)
        return self

    def __len__(self) -> int:
        return len(self._module_names)

    def __getitem__(self, index: int) -> Module:
        return getattr(self, self._module_names[index])

    def __iter__(self) -> Iterator[Module]:
        return iter(self.children())
