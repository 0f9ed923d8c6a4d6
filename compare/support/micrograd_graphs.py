"""micrograd's expression graphs as programs: the operations, micrograd's own test graphs, a
generator of random well-conditioned graphs, and how often each node is used. Pure Python on
any operand type with micrograd's operators (Values, 0-d tensors, floats). A private helper of
``compare.language.micrograd``: the registry skips files whose names start with ``_``."""
from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


# --- expression graphs as programs ------------------------------------------------------------
@dataclass(frozen=True)
class Graph:
    """Leaves (float64 values), operations over node indices, and which node is the output.

    An operation is a tuple: ("add", i, j) is nodes[i] + nodes[j]; ("radd", c, i) is c + nodes[i]
    and ("addc", i, c) nodes[i] + c for a number c (likewise sub, mul, div); ("pow", i, c),
    ("powv", i, j), ("rpow", c, i); ("neg" | "relu" | "tanh" | "exp" | "log" | "sigmoid", i);
    ("iadd", i, j) is ``nodes[i] += nodes[j]``: node i is rebound, nothing is appended.
    """

    leaves: tuple[float, ...]
    ops: tuple[tuple[Any, ...], ...]
    root: int


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "powv": lambda a, b: a ** b,
}
_UNARY: dict[str, Callable[[Any], Any]] = {
    "neg": lambda a: -a, "relu": lambda a: a.relu(), "tanh": lambda a: a.tanh(),
    "exp": lambda a: a.exp(), "log": lambda a: a.log(), "sigmoid": lambda a: a.sigmoid(),
}
_NUMBER_LEFT = {"radd": "add", "rsub": "sub", "rmul": "mul", "rdiv": "div", "rpow": "powv"}
_NUMBER_RIGHT = {"addc": "add", "subc": "sub", "mulc": "mul", "divc": "div", "pow": "powv"}


def execute(graph: Graph, leaves: Sequence[Any]) -> list[Any]:
    """Every node of ``graph`` computed from ``leaves`` (Values or 0-d tensors), in order."""
    nodes = list(leaves)
    for op, *args in graph.ops:
        if op in _BINARY:
            nodes.append(_BINARY[op](nodes[args[0]], nodes[args[1]]))
        elif op in _NUMBER_LEFT:  # the number is the left operand: __radd__, __rpow__, ...
            nodes.append(_BINARY[_NUMBER_LEFT[op]](args[0], nodes[args[1]]))
        elif op in _NUMBER_RIGHT:
            nodes.append(_BINARY[_NUMBER_RIGHT[op]](nodes[args[0]], args[1]))
        elif op in _UNARY:
            nodes.append(_UNARY[op](nodes[args[0]]))
        elif op == "iadd":
            node = nodes[args[0]]
            node += nodes[args[1]]  # micrograd: a new Value; torch: add_ in place
            nodes[args[0]] = node
        else:
            raise ValueError(f"unknown operation {op!r}")
    return nodes


# micrograd's own tests (test_engine.py), as programs
SANITY = Graph(leaves=(-4.0,), root=11, ops=(
    ("rmul", 2.0, 0), ("addc", 1, 2.0), ("add", 2, 0),   # z = 2 * x + 2 + x        -> 3
    ("relu", 3), ("mul", 3, 0), ("add", 4, 5),           # q = z.relu() + z * x     -> 6
    ("mul", 3, 3), ("relu", 7),                          # h = (z * z).relu()       -> 8
    ("add", 8, 6), ("mul", 6, 0), ("add", 9, 10),        # y = h + q + q * x        -> 11
))
MORE_OPS = Graph(leaves=(-4.0, 2.0), root=20, ops=(
    ("add", 0, 1),                                       # c = a + b                -> 2
    ("mul", 0, 1), ("pow", 1, 3.0), ("add", 3, 4),       # d = a * b + b**3         -> 5
    ("addc", 2, 1.0), ("iadd", 2, 6),                    # c += c + 1
    ("radd", 1.0, 2), ("neg", 0), ("add", 7, 8), ("iadd", 2, 9),
    #                                                      c += 1 + c + (-a)
    ("mulc", 5, 2.0), ("add", 1, 0), ("relu", 11), ("add", 10, 12), ("iadd", 5, 13),
    #                                                      d += d * 2 + (b + a).relu()
    ("rmul", 3.0, 5), ("sub", 1, 0), ("relu", 15), ("add", 14, 16), ("iadd", 5, 17),
    #                                                      d += 3 * d + (b - a).relu()
    ("sub", 2, 5), ("pow", 18, 2.0), ("divc", 19, 2.0),  # e = c - d; f = e**2; g = f / 2
    ("rdiv", 10.0, 19), ("iadd", 20, 21),                # g += 10.0 / f
))

# Ops after which an in-place ``+=`` on the result is legal in torch: their backward saves
# neither their output nor (as consumers) the node being rebound.
_SAFE_TO_REBIND = {"add", "sub", "mul", "radd", "rsub", "rmul", "addc", "subc", "mulc", "divc",
                   "iadd"}
_DOES_NOT_SAVE_OPERAND = {"add", "sub", "radd", "rsub", "addc", "subc", "rmul", "mulc",
                          "divc", "neg", "iadd"}
_BOUND = 50.0  # |node values| stay below this: no overflow, float32 keeps ~6 digits
_POWERS = (2.0, 3.0, -1.0, 0.5, -0.5, 1.5)


def _number(rng: np.random.Generator) -> float:
    """A nonzero multiple of 1/4 in [-2, 2]: exact in float32, so both dtypes ask the same."""
    return float(rng.choice([k for k in range(-8, 9) if k]) / 4)


def random_graph(rng: np.random.Generator, n_leaves: int, n_ops: int, reuse: float) -> Graph:
    """A random program whose every operation is smooth where it is evaluated.

    ``reuse``: the probability that an operand is a "hub" (a leaf or a node promoted to hub),
    so a few nodes feed many operations; otherwise a recent node (depth) or any node (sharing).
    The output adds every node nobody consumed, times a number: every node reaches it.
    """
    values = list(rng.uniform(-2.0, 2.0, n_leaves))
    creator = ["leaf"] * n_leaves
    consumers: list[list[str]] = [[] for _ in range(n_leaves)]
    hubs = list(range(n_leaves))
    ops: list[tuple[Any, ...]] = []

    def pick() -> int:
        u, n = rng.random(), len(values)
        if u < reuse:
            return int(hubs[rng.integers(len(hubs))])
        if u < reuse + (1.0 - reuse) / 2:
            return int(n - 1 - rng.integers(min(n, 3)))
        return int(rng.integers(n))

    def propose() -> tuple[Any, ...] | None:
        """One random operation, or None where it would not be smooth and well-conditioned."""
        kind = rng.choice(["binary", "left", "right", "unary", "iadd"], p=[.3, .15, .15, .3, .1])
        i, j, c = pick(), pick(), _number(rng)
        a, b = values[i], values[j]
        if kind == "binary":
            op = str(rng.choice(list(_BINARY)))
            bad = op == "div" and abs(b) < 0.2 or op == "powv" and (a < 0.2 or abs(b) > 3)
            return None if bad else (op, i, j)
        if kind == "left":
            op = str(rng.choice(list(_NUMBER_LEFT)))
            if op == "rpow":
                c = float(rng.choice([0.5, 2.0, 3.0]))  # a positive base: c^a is real
            return None if op == "rdiv" and abs(a) < 0.2 else (op, c, i)
        if kind == "right":
            op = str(rng.choice(list(_NUMBER_RIGHT)))
            if op == "pow":
                c = float(rng.choice(_POWERS))
                if c < 0 and abs(a) < 0.2 or c != round(c) and a < 0.2:
                    return None
            return (op, i, c)
        if kind == "unary":
            op = str(rng.choice(list(_UNARY)))
            bad = op == "relu" and abs(a) < 0.01 or op == "log" and a < 0.2 or \
                op == "exp" and a > 3.0
            return None if bad else (op, i)
        # ``+=`` on a computed node whose creator and consumers let torch rebind it in place
        if creator[i] not in _SAFE_TO_REBIND or i == j or \
                not set(consumers[i]) <= _DOES_NOT_SAVE_OPERAND:
            return None
        return ("iadd", i, j)

    while len(ops) < n_ops:
        op = propose()
        value = None if op is None else _float_value(op, values)
        if value is None or not abs(value) <= _BOUND:
            continue
        ops.append(op)
        operands = [x for x, is_node in zip(op[1:], _operand_mask(op), strict=True) if is_node]
        for k in operands:
            consumers[k].append(op[0])
        if op[0] == "iadd":
            values[op[1]], creator[op[1]] = value, "iadd"
            continue
        values.append(float(value))
        creator.append(op[0])
        consumers.append([])
        if rng.random() < 0.2:
            hubs.append(len(values) - 1)
    # the output: sum of c_k * (every node that feeds nothing yet)
    sinks = [k for k in range(len(values)) if not consumers[k]]
    total = None
    for k in sinks:
        ops.append(("rmul", _number(rng), k))
        values.append(0.0)
        term = len(values) - 1
        if total is not None:
            ops.append(("add", total, term))
            values.append(0.0)
            term = len(values) - 1
        total = term
    return Graph(leaves=tuple(float(v) for v in values[:n_leaves]), ops=tuple(ops),
                 root=len(values) - 1)


_FLOAT: dict[str, Callable[..., float]] = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
    "powv": operator.pow, "neg": operator.neg, "relu": lambda a: max(a, 0.0), "tanh": math.tanh,
    "exp": math.exp, "log": math.log, "sigmoid": lambda a: 1.0 / (1.0 + math.exp(-a)),
}


def _float_value(op: tuple[Any, ...], values: Sequence[float]) -> float | None:
    """An operation's value in float64 on the generator's values (None where undefined)."""
    name, *args = op
    try:
        if name in _NUMBER_LEFT:
            return _FLOAT[_NUMBER_LEFT[name]](args[0], values[args[1]])
        if name in _NUMBER_RIGHT:
            return _FLOAT[_NUMBER_RIGHT[name]](values[args[0]], args[1])
        if name == "iadd":
            return values[args[0]] + values[args[1]]
        return _FLOAT[name](*(values[k] for k in args))
    except (ArithmeticError, ValueError):  # 0 ** -1, log(0), overflow: not this operation
        return None


def _operand_mask(op: tuple[Any, ...]) -> list[bool]:
    """Which arguments of an operation are node indices (the rest are numbers)."""
    if op[0] in _NUMBER_LEFT:
        return [False, True]
    if op[0] in _NUMBER_RIGHT:
        return [True, False]
    return [True] * (len(op) - 1)


def uses(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """How many operations read each node (``node.grad``'s order) and each leaf: the number
    of contributions backward must add (+=) into its gradient; a ``+=`` rebinding counts as
    reading both operands."""
    current = list(range(len(graph.leaves)))  # node index -> the Value it names now
    count: dict[int, int] = {}
    fresh = len(current)
    for op in graph.ops:
        for k, is_node in zip(op[1:], _operand_mask(op), strict=True):
            if is_node:
                count[current[k]] = count.get(current[k], 0) + 1
        if op[0] == "iadd":
            current[op[1]] = fresh
        else:
            current.append(fresh)
        fresh += 1
    return (np.array([count.get(v, 0) for v in current]),
            np.array([count.get(k, 0) for k in range(len(graph.leaves))]))
