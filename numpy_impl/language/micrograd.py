r"""micrograd: reverse-mode automatic differentiation on scalars, and a tiny MLP on top.

A ``Value`` holds one number ``data`` and the derivative ``grad = dL/d(this value)`` of the
final output L. Every operation creates a new Value that remembers its operands (``_prev``)
and a closure ``_backward`` applying the local chain rule: given ``out.grad`` it ADDS each
operand's share into the operand's ``grad``:

    out = a + b          a.grad += out.grad                  b.grad += out.grad
    out = a * b          a.grad += b * out.grad              b.grad += a * out.grad
    out = a ** c         a.grad += c * a^(c-1) * out.grad                    (c a number)
    out = a ** b         a.grad += b * a^(b-1) * out.grad    b.grad += out * ln(a) * out.grad
    out = c ** a         a.grad += out * ln(c) * out.grad                    (c a number)
    out = relu(a)        a.grad += [a > 0] * out.grad        (0 at a = 0, as torch)
    out = tanh(a)        a.grad += (1 - out^2) * out.grad
    out = exp(a)         a.grad += out * out.grad
    out = log(a)         a.grad += out.grad / a
    out = sigmoid(a)     a.grad += out (1 - out) * out.grad
    -a = a * -1,   a - b = a + (-b),   a / b = a * b^-1          (derived, as in micrograd)

``+=`` is the key: a Value used k times receives k contributions (the multivariate chain rule
sums over every path). ``L.backward()`` sets dL/dL = 1 and calls ``_backward`` on every node
in reverse topological order, so a node's grad is complete before it is passed on.

The numbers are NumPy scalars: ``Value(2.0)`` holds ``np.float64(2.0)``, ``Value(np.float32(2))``
computes in float32; a plain number on either side of an operator takes the Value's dtype.

    x = Value(-4.0); z = 2 * x + 2 + x; y = (z * z).relu() + z * x
    y.backward()                                     # x.grad == dy/dx

``Neuron`` / ``Layer`` / ``MLP`` build a multilayer perceptron out of Values: neuron j of a layer
computes ``act(sum_i w_i x_i + b)``. Their parameter names (``layers.0.neurons.1.w.2``) are the
torch twin's, so weights move between the twins with ``load_state_dict``.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from numpy_impl import random as nprandom
from numpy_impl.module import to_numpy

Number = int | float | np.floating


class Value:
    """A scalar and its gradient, with the operations that build a computation graph."""

    # NumPy scalars on the left (np.float64(2) * v) defer to Value's reflected operators
    # instead of turning v into an object array.
    __array_ufunc__ = None

    def __init__(self, data: Number, _children: tuple[Value, ...] = (), _op: str = "") -> None:
        self.data = data if isinstance(data, np.floating) else np.float64(data)
        self.grad = self._scalar(0.0)  # dL/d(self): nothing flowed back yet
        self._backward = lambda: None  # leaves have no operands to pass a gradient to
        self._prev = _children  # a tuple, not a set: the same order on every run
        self._op = _op

    def _scalar(self, x: Number) -> np.floating:
        """``x`` in this Value's dtype: float32 graphs stay float32."""
        return type(self.data)(x)

    def _lift(self, other: Value | Number) -> Value:
        """A number on either side of an operator becomes a constant leaf of our dtype."""
        return other if isinstance(other, Value) else Value(self._scalar(other))

    # --- the primitive operations: forward value and local chain rule --------------------
    def __add__(self, other: Value | Number) -> Value:
        other = self._lift(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:  # d(a+b)/da = d(a+b)/db = 1
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other: Value | Number) -> Value:
        other = self._lift(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:  # d(ab)/da = b, d(ab)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __pow__(self, other: Value | Number) -> Value:
        if not isinstance(other, Value):  # a ** c: the power rule
            exponent = self._scalar(other)
            out = Value(self.data ** exponent, (self,), f"**{other}")

            def _backward() -> None:  # d(a^c)/da = c a^(c-1)
                self.grad += exponent * self.data ** (exponent - 1.0) * out.grad
            out._backward = _backward
            return out
        out = Value(self.data ** other.data, (self, other), "**")

        def _backward_both() -> None:  # a^b = exp(b ln a): d/da = b a^(b-1), d/db = a^b ln a
            self.grad += other.data * self.data ** (other.data - 1.0) * out.grad
            other.grad += out.data * np.log(self.data) * out.grad
        out._backward = _backward_both
        return out

    def __rpow__(self, other: Number) -> Value:
        base = self._scalar(other)
        out = Value(base ** self.data, (self,), f"{other}**")

        def _backward() -> None:  # d(c^a)/da = c^a ln c
            self.grad += out.data * np.log(base) * out.grad
        out._backward = _backward
        return out

    def relu(self) -> Value:
        out = Value(self.data if self.data > 0.0 else self._scalar(0.0), (self,), "relu")

        def _backward() -> None:  # the subgradient 0 at a = 0, as torch's
            if out.data > 0.0:
                self.grad += out.grad
        out._backward = _backward
        return out

    def tanh(self) -> Value:
        t = np.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward() -> None:  # d tanh(a)/da = 1 - tanh(a)^2
            self.grad += (1.0 - t * t) * out.grad
        out._backward = _backward
        return out

    def exp(self) -> Value:
        out = Value(np.exp(self.data), (self,), "exp")

        def _backward() -> None:  # d e^a/da = e^a
            self.grad += out.data * out.grad
        out._backward = _backward
        return out

    def log(self) -> Value:
        out = Value(np.log(self.data), (self,), "log")

        def _backward() -> None:  # d ln(a)/da = 1/a
            self.grad += out.grad / self.data
        out._backward = _backward
        return out

    def sigmoid(self) -> Value:
        # 1 / (1 + e^-a) for a >= 0, e^a / (1 + e^a) below: exp never overflows
        if self.data >= 0.0:
            s = 1.0 / (1.0 + np.exp(-self.data))
        else:
            e = np.exp(self.data)
            s = e / (1.0 + e)
        out = Value(s, (self,), "sigmoid")

        def _backward() -> None:  # d sigma(a)/da = sigma (1 - sigma)
            self.grad += s * (1.0 - s) * out.grad
        out._backward = _backward
        return out

    # --- reverse mode ----------------------------------------------------------------------
    def backward(self) -> None:
        """dL/dv for every v this Value depends on, L = self; grads ADD to what is there."""
        topo = topological_order(self)
        self.grad = self._scalar(1.0)  # dL/dL = 1
        for node in reversed(topo):  # outputs before inputs: each grad is complete when used
            node._backward()

    # --- derived operations: compositions of the primitives above -------------------------
    def __neg__(self) -> Value:  # -a
        return self * -1.0

    def __radd__(self, other: Number) -> Value:  # c + a
        return self + other

    def __sub__(self, other: Value | Number) -> Value:  # a - b
        return self + (-other)

    def __rsub__(self, other: Number) -> Value:  # c - a
        return other + (-self)

    def __rmul__(self, other: Number) -> Value:  # c * a
        return self * other

    def __truediv__(self, other: Value | Number) -> Value:  # a / b = a * b^-1
        return self * self._lift(other) ** -1.0

    def __rtruediv__(self, other: Number) -> Value:  # c / a = c * a^-1
        return other * self ** -1.0

    def __repr__(self) -> str:
        return f"Value(data={self.data!s}, grad={self.grad!s})"


def topological_order(root: Value) -> list[Value]:
    """Every node ``root`` depends on, each after all of its operands (root last).

    An iterative depth-first search: a recursive one hits Python's recursion limit on a
    graph a thousand operations deep (a training loop builds those easily).
    """
    order: list[Value] = []
    visited: set[int] = set()
    stack: list[tuple[Value, bool]] = [(root, False)]
    while stack:
        node, operands_done = stack.pop()
        if operands_done:
            order.append(node)  # post-order: after all of its operands
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node._prev) if id(child) not in visited)
    return order


# --- a tiny neural network library on Values -----------------------------------------------
class Module:
    """micrograd's Module, with the torch-style methods a twin needs: named parameters,
    state_dict / load_state_dict, dtype casts, and ``backward`` from the last outputs."""

    training: bool = True

    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        return iter(())

    def parameters(self) -> list[Value]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        return iter(())  # micrograd modules keep no running state

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = p._scalar(0.0)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: np.array(p.data) for name, p in self.named_parameters()}  # 0-d arrays

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Copy values in by name (ndarrays or torch tensors); missing or extra keys raise."""
        params = dict(self.named_parameters())
        missing, unexpected = set(params) - set(state_dict), set(state_dict) - set(params)
        if missing or unexpected:
            raise KeyError(f"load_state_dict: missing keys {sorted(missing)}, "
                           f"unexpected keys {sorted(unexpected)}")
        for name, value in state_dict.items():
            array = to_numpy(value)
            if array.shape != ():
                raise ValueError(f"{name}: expected a scalar (shape ()), got shape {array.shape}")
            params[name].data = array.astype(type(params[name].data))[()]

    def to(self, dtype: Any) -> Module:
        """Cast every parameter (data and grad) to ``dtype`` (np.float32, np.float64)."""
        scalar = np.dtype(dtype).type
        for p in self.parameters():
            p.data, p.grad = scalar(p.data), scalar(p.grad)
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    def train(self, mode: bool = True) -> Module:
        self.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def __call__(self, x: Sequence[Value | Number]) -> Any:
        self._outputs = self.forward(x)
        return self._outputs

    def forward(self, x: Sequence[Value | Number]) -> Any:
        raise TypeError(f"{type(self).__name__} defines no forward")

    def backward(self, grad_output: Any) -> None:
        """Backpropagate upstream gradients g_k of the last call's outputs o_k: the backward
        of L = sum_k g_k o_k, so dL/do_k = g_k. Parameter grads accumulate; returns None."""
        outputs = self._outputs if isinstance(self._outputs, list) else [self._outputs]
        grads = np.broadcast_to(np.asarray(grad_output), (len(outputs),))
        total = sum((float(g) * o for g, o in zip(grads, outputs, strict=True)), 0.0)
        total.backward()


ACTIVATIONS = ("tanh", "relu")


class Neuron(Module):
    """act(sum_i w_i x_i + b) with w_i, b ~ U(-1, 1) (the lecture's init); linear if not
    ``nonlin``."""

    def __init__(self, nin: int, nonlin: bool = True, activation: str = "tanh") -> None:
        if activation not in ACTIVATIONS:  # say so now, not at the first forward
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        draw = nprandom.generator()
        dtype = nprandom.default_dtype().type  # float32 by default, as torch
        self.w = [Value(dtype(draw.uniform(-1.0, 1.0))) for _ in range(nin)]
        self.b = Value(dtype(draw.uniform(-1.0, 1.0)))
        self.nonlin, self.activation = nonlin, activation

    def forward(self, x: Sequence[Value | Number]) -> Value:
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)  # w . x + b
        if not self.nonlin:
            return act
        return act.tanh() if self.activation == "tanh" else act.relu()

    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        yield "b", self.b  # first, as torch lists a module's own parameter before w's list
        yield from ((f"w.{i}", wi) for i, wi in enumerate(self.w))

    def __repr__(self) -> str:
        kind = self.activation if self.nonlin else "linear"
        return f"{kind.capitalize()}Neuron({len(self.w)})"


class Layer(Module):
    """``nout`` independent neurons reading the same inputs."""

    def __init__(self, nin: int, nout: int, **kwargs: Any) -> None:
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def forward(self, x: Sequence[Value | Number]) -> Value | list[Value]:
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out  # micrograd: a single output as a Value

    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        for j, neuron in enumerate(self.neurons):
            yield from ((f"neurons.{j}.{name}", p) for name, p in neuron.named_parameters())

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """Layers of sizes nin -> nouts[0] -> ... -> nouts[-1]; the last layer is linear."""

    def __init__(self, nin: int, nouts: Sequence[int], activation: str = "tanh") -> None:
        sizes = [nin, *nouts]
        self.layers = [Layer(sizes[i], sizes[i + 1], nonlin=i != len(nouts) - 1,
                             activation=activation) for i in range(len(nouts))]

    def forward(self, x: Sequence[Value | Number]) -> Value | list[Value]:
        for layer in self.layers:
            x = layer(x)
            x = [x] if isinstance(x, Value) else x
        return x[0] if len(x) == 1 else x

    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        for k, layer in enumerate(self.layers):
            yield from ((f"layers.{k}.{name}", p) for name, p in layer.named_parameters())

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
