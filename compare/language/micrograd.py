"""Compare micrograd's ``Value`` with autograd on 0-d tensors, on expression graphs and on a
tiny MLP trained for a few SGD steps.

Graphs. An expression graph is a small program: leaves x0, x1, ... and a list of operations,
each reading earlier nodes by index. The same program runs on micrograd Values and on 0-d
torch tensors (the operators and ``.relu() .tanh() .exp() .log() .sigmoid()`` are the same
methods on both). Random graphs come from the trial's Generator and are built to stress the
engine's bookkeeping: operands are often "hub" nodes used many times, sub-expressions are
shared, numbers appear on either side of every operator, and ``+=`` rebinds a node (in torch:
an in-place add). Each operation is only chosen where it is smooth and well-conditioned (log
of values > 0.2, no relu within 0.01 of its kink, |values| <= 50), so both dtypes and finite
differences see the same function. Compared: the output, every leaf's gradient by name
(``grad.x0``, ...), every node's value (``node.data``) and gradient (``node.grad``; torch
keeps them with ``retain_grad``). Two fixed graphs are micrograd's own tests (known answers
in tests/language/test_micrograd.py).

MLP. ``MLP(nin, nouts)`` of Neurons trained for a few steps of ``p.data += -lr * p.grad`` on
a handful of examples: the training loop is written once and runs on both twins. Compared per
step: the loss, every weight's gradient and every weight after the update, gathered per layer
as (nout, nin + 1) matrices [w | b] (the nn.Linear layout plus the bias column). Witness: the
same network as ``nn.Linear`` layers trained by ``torch.optim.SGD`` (batched, so its sums run
in another order). Finite differences check the first step's gradients.

float32: micrograd computes in the dtype of its numbers; Values holding np.float32 stay
float32, as 0-d float32 tensors do, so the float32 run is a real one (refereed by float64).

Run: ``python -m compare.language.micrograd``.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compare.concept import Case, Concept, Outcome, Trial
from compare.finite_diff import numerical_gradient
from compare.tolerances import FINITE_DIFFERENCE, Tolerance
from numpy_impl.language import micrograd as numpy_twin
from torch_impl.language import micrograd as torch_twin


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


def _graph_for(case: Case, trial: Trial) -> Graph:
    if "graph" in case.options:
        return case.options["graph"]
    options = case.options
    return random_graph(trial.rng(), options["leaves"], options["ops"], options["reuse"])


# --- running a graph on both twins ------------------------------------------------------------
def numpy_graph(graph: Graph, leaves: np.ndarray, value_cls: Any = None) -> dict[str, Any]:
    """Forward and ``backward()`` with micrograd Values; every named value."""
    value_cls = value_cls or numpy_twin.Value
    leaf_values = [value_cls(x) for x in leaves]  # NumPy scalars: their dtype is the compute dtype
    nodes = execute(graph, leaf_values)
    root = nodes[graph.root]
    root.backward()
    out = {"out": np.asarray(root.data)}
    out.update({f"grad.x{k}": np.asarray(v.grad) for k, v in enumerate(leaf_values)})
    out["node.data"] = np.array([n.data for n in nodes])
    out["node.grad"] = np.array([n.grad for n in nodes])
    return out


def torch_graph(graph: Graph, leaves: np.ndarray, trial: Trial,
                value_cls: Any = None) -> dict[str, Any]:
    """The same program on 0-d tensors; ``retain_grad`` keeps the intermediates' gradients.
    ``value_cls(x, dtype=...)`` makes a leaf (a user's in place of the twin's ``Value``)."""
    import torch
    value_cls = value_cls or torch_twin.Value
    leaf_tensors = [value_cls(float(x), dtype=trial.torch_dtype) for x in leaves]
    nodes = execute(graph, leaf_tensors)
    for node in nodes:
        if not node.is_leaf:
            node.retain_grad()
    nodes[graph.root].backward()

    def grad(t: Any) -> float:  # a node the output does not depend on has no grad: 0
        return 0.0 if t.grad is None else t.grad.item()
    out = {"out": nodes[graph.root].detach().numpy()}
    out.update({f"grad.x{k}": np.asarray(grad(t), dtype=trial.np_dtype)
                for k, t in enumerate(leaf_tensors)})
    out["node.data"] = torch.stack([n.detach() for n in nodes]).numpy()
    out["node.grad"] = np.array([grad(n) for n in nodes], dtype=trial.np_dtype)
    return out


def _graph_fd(graph: Graph, leaves: np.ndarray, analytic: dict[str, Any],
              value_cls: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Central differences of the output with respect to every leaf (float64)."""
    value_cls = value_cls or numpy_twin.Value
    point = np.array(leaves, dtype=np.float64)
    loss = lambda: float(execute(graph, [value_cls(x) for x in point])[graph.root].data)  # noqa: E731
    numeric = numerical_gradient(loss, point)
    return {f"grad.x{k}": (np.asarray(analytic[f"grad.x{k}"]), np.asarray(numeric[k]))
            for k in range(len(point))}


def run_graph(case: Case, trial: Trial, numpy_cls: Any = None,
              torch_cls: Any = None) -> Outcome:
    graph = _graph_for(case, trial)
    leaves = trial.cast(np.array(graph.leaves))
    numpy_values = numpy_graph(graph, leaves.copy(), numpy_cls or case.numpy)
    node_uses, leaf_uses = uses(graph)
    outcome = Outcome(numpy=numpy_values,
                      torch=torch_graph(graph, leaves.copy(), trial, torch_cls or case.torch),
                      inputs={"leaves": leaves},
                      contributions={"node.grad": node_uses,
                                     **{f"grad.x{k}": np.asarray(n)
                                        for k, n in enumerate(leaf_uses)}})
    if trial.fd and case.fd and trial.dtype == "float64":
        outcome.fd = _graph_fd(graph, leaves, numpy_values, numpy_cls)
    return outcome


# --- the MLP, trained for a few steps ------------------------------------------------------------
def mlp_loss(scores: Sequence[Any], targets: Sequence[Any], params: Sequence[Any],
             options: dict[str, Any]) -> Any:
    """Written once for both twins: sum of squares, or micrograd's demo hinge loss
    mean(relu(1 - y * score)) + alpha * sum(p^2)."""
    if options["loss"] == "mse":
        return sum(((s - t) ** 2 for s, t in zip(scores, targets, strict=True)), 0.0)
    data_loss = sum(((1 + -t * s).relu() for s, t in zip(scores, targets, strict=True)), 0.0)
    reg_loss = options["alpha"] * sum((p * p for p in params), 0.0)
    return data_loss * (1.0 / len(scores)) + reg_loss


def _layer_matrix(model: Any, k: int, what: str) -> np.ndarray:
    """Layer k's [w | b] (or their grads) as an (nout, nin + 1) float array."""
    def number(p: Any) -> Any:
        v = getattr(p, what)
        return 0.0 if v is None else (v.item() if hasattr(v, "item") else v)
    rows = [[number(w) for w in n.w] + [number(n.b)] for n in model.layers[k].neurons]
    return np.array(rows)


def train_micrograd(model: Any, X: Any, y: Any, options: dict[str, Any],
                    dtype: np.dtype) -> dict[str, np.ndarray]:
    """The lecture's loop, for either twin: forward, zero_grad, backward, p.data -= lr p.grad."""
    record = {}
    for step in range(options["steps"]):
        scores = [model(x) for x in X]
        loss = mlp_loss(scores, list(y), model.parameters(), options)
        model.zero_grad()
        loss.backward()
        record[f"step{step}/loss"] = np.asarray(float(loss.data), dtype=dtype)
        for k in range(len(model.layers)):
            record[f"step{step}/grad.layers.{k}"] = _layer_matrix(model, k, "grad").astype(dtype)
        for p in model.parameters():
            p.data += -options["lr"] * p.grad  # plain SGD, by hand in both twins
        for k in range(len(model.layers)):
            record[f"step{step}/param.layers.{k}"] = _layer_matrix(model, k, "data").astype(dtype)
    return record


def train_builtin(state: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray,
                  case: Case, trial: Trial) -> dict[str, np.ndarray]:
    """The witness: nn.Linear layers with the same weights, batched, trained by torch.optim.SGD."""
    import torch
    from torch import nn
    options, init = case.options, case.init
    sizes = [init["nin"], *init["nouts"]]
    linears = []
    for k in range(len(sizes) - 1):
        linear = nn.Linear(sizes[k], sizes[k + 1]).to(trial.torch_dtype)
        weight = np.array([[state[f"layers.{k}.neurons.{j}.w.{i}"] for i in range(sizes[k])]
                           for j in range(sizes[k + 1])])  # (out, in): neuron j is row j
        bias = np.array([state[f"layers.{k}.neurons.{j}.b"] for j in range(sizes[k + 1])])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight))
            linear.bias.copy_(torch.from_numpy(bias))
        linears.append(linear)
    act = torch.tanh if init.get("activation", "tanh") == "tanh" else torch.relu
    params = [p for linear in linears for p in (linear.weight, linear.bias)]
    optimizer = torch.optim.SGD(params, lr=options["lr"])
    inputs, targets = torch.from_numpy(X), torch.from_numpy(y)
    record = {}
    for step in range(options["steps"]):
        h = inputs
        for k, linear in enumerate(linears):
            h = linear(h)
            h = act(h) if k < len(linears) - 1 else h
        scores = h[:, 0]
        if options["loss"] == "mse":
            loss = ((scores - targets) ** 2).sum()
        else:
            loss = torch.relu(1 - targets * scores).mean() \
                + options["alpha"] * sum((p * p).sum() for p in params)
        optimizer.zero_grad()
        loss.backward()
        record[f"step{step}/loss"] = loss.detach().numpy()
        for k, linear in enumerate(linears):
            record[f"step{step}/grad.layers.{k}"] = torch.cat(
                [linear.weight.grad, linear.bias.grad[:, None]], dim=1).numpy().copy()
        optimizer.step()
        for k, linear in enumerate(linears):
            record[f"step{step}/param.layers.{k}"] = torch.cat(
                [linear.weight, linear.bias[:, None]], dim=1).detach().numpy().copy()
    return record


def _mlp_fd(case: Case, state: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray,
            analytic: dict[str, np.ndarray],
            numpy_cls: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Central differences of the first step's loss with respect to every weight (float64)."""
    model = (numpy_cls or numpy_twin.MLP)(**case.init)
    model.to(np.float64)
    model.load_state_dict(state)
    params = model.parameters()
    point = np.array([p.data for p in params], dtype=np.float64)

    def loss() -> float:
        for p, x in zip(params, point, strict=True):
            p.data = x  # a NumPy float64 scalar, as the twin holds
        return float(mlp_loss([model(x) for x in X], list(y), params, case.options).data)
    numeric = numerical_gradient(loss, point)
    for p, x in zip(params, numeric, strict=True):
        p.grad = x  # read back per layer through the same layout as the analytic grads
    return {f"step0/grad.layers.{k}": (analytic[f"step0/grad.layers.{k}"],
                                       _layer_matrix(model, k, "grad"))
            for k in range(len(model.layers))}


def run_mlp(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    import torch
    rng = trial.rng()
    torch.manual_seed(trial.seed)
    reference = case.torch(**case.init).to(torch.float64)  # the torch twin initializes itself
    state = {k: trial.cast(v.detach().numpy().copy()) for k, v in reference.state_dict().items()}
    n, nin = case.options["examples"], case.init["nin"]
    X = trial.cast(rng.uniform(-1.0, 1.0, (n, nin)))  # (n, nin)
    y = trial.cast(rng.choice([-1.0, 1.0], n))  # (n,) targets / labels
    twin = (torch_cls or case.torch)(**case.init).to(trial.torch_dtype)
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    mine = (numpy_cls or case.numpy)(**case.init)
    mine.to(trial.np_dtype)
    mine.load_state_dict(state)
    outcome = Outcome(
        numpy=train_micrograd(mine, X, y, case.options, trial.np_dtype),
        torch=train_micrograd(twin, torch.from_numpy(X), torch.from_numpy(y), case.options,
                              trial.np_dtype),
        inputs={"X": X, "y": y})
    if trial.builtin:
        outcome.builtin = train_builtin(state, X, y, case, trial)
    if trial.fd and case.fd and trial.dtype == "float64":
        outcome.fd = _mlp_fd(case, state, X, y, outcome.numpy, numpy_cls)
    return outcome


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """Graph cases run a program on Values and tensors; MLP cases train both twins."""
    if case.options["kind"] == "graph":
        return run_graph(case, trial, numpy_cls, torch_cls)
    return run_mlp(case, trial, numpy_cls, torch_cls)


# --- drawing a graph (matplotlib only) --------------------------------------------------------
def _graph_drawing(graph: Graph, path: Path, title: str) -> Path:
    """Nodes by depth from left (leaves) to right (output), each with its op, data and grad."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    leaves = [numpy_twin.Value(x) for x in graph.leaves]
    root = execute(graph, leaves)[graph.root]
    root.backward()
    order = numpy_twin.topological_order(root)  # every Value, constants and rebinds included
    leaf_names = {id(v): f"x{k}" for k, v in enumerate(leaves)}
    depth: dict[int, int] = {}
    for v in order:
        depth[id(v)] = 1 + max((depth[id(c)] for c in v._prev), default=-1)
    columns: dict[int, list[Any]] = {}
    for v in order:
        columns.setdefault(depth[id(v)], []).append(v)
    where = {id(v): (d, row - (len(col) - 1) / 2) for d, col in columns.items()
             for row, v in enumerate(col)}
    height = max(len(col) for col in columns.values())
    fig, ax = plt.subplots(figsize=(2.2 * len(columns) + 1, 0.9 * height + 1.5))
    for v in order:
        x1, y1 = where[id(v)]
        for c in v._prev:
            x0, y0 = where[id(c)]
            ax.annotate("", (x1 - 0.38, y1), (x0 + 0.38, y0),
                        arrowprops=dict(arrowstyle="->", color="0.55", lw=0.8))
        name = v._op or leaf_names.get(id(v), "const")
        ax.text(x1, y1, f"{name}\ndata {float(v.data):.4g}\ngrad {float(v.grad):.4g}",
                ha="center", va="center", fontsize=7, family="monospace",
                bbox=dict(boxstyle="round", fc="lightyellow" if not v._prev else "white",
                          ec="tab:blue" if v is root else "0.4"))
    ax.set_xlim(-0.7, len(columns) - 0.3)
    ax.set_ylim(-height / 2 - 0.2, height / 2 + 0.2)
    ax.axis("off")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """micrograd_graph.png: micrograd's test expression drawn with every node's data and
    grad; micrograd_random_graph.png: a small random graph of this seed; micrograd_mlp.png:
    both twins' training losses."""
    from compare.plots import plot_curves
    directory = Path(directory)
    paths = [
        _graph_drawing(MORE_OPS, directory / "micrograd_graph.png",
                       "micrograd's test expression g(a=-4, b=2): op, data, grad = dg/dnode "
                       "(float64; yellow = leaves and constants, blue = output)"),
        _graph_drawing(random_graph(np.random.default_rng(seed), 3, 8, 0.5),
                       directory / "micrograd_random_graph.png",
                       f"a random expression graph (seed {seed}, float64): op, data, grad"),
    ]
    case = CONCEPT.case("mlp-tanh")
    outcome = run_mlp(case, Trial("float64", seed=seed, builtin=False, fd=False))
    steps = np.arange(case.options["steps"])
    losses = [np.array([o[f"step{k}/loss"] for k in steps]) for o in (outcome.numpy,
                                                                      outcome.torch)]
    paths.append(plot_curves(directory / "micrograd_mlp.png",
                             "micrograd MLP(3, [4, 4, 1]), sum of squared errors, SGD",
                             steps, losses[0], losses[1], xlabel="SGD step", ylabel="loss",
                             dtype="float64"))
    return paths


# Random graphs are compositions of up to hundreds of operations whose conditioning nothing
# bounds: a final sum or a leaf's gradient may cancel to 1/100 of its terms. The twins' tanh,
# exp, log and pow differ by an ulp, and cancellation amplifies that: the float32 twins differ
# by up to 1.4e-4 relative on a scalar over 300 seeds (4.6e-5 over seeds 0-59, benchmarks/
# tolerance_audit.py), each as far from the float64 referee as the other: 3e-4 for the twins
# (graphs have no built-in witness) -- a wrong rule is off by O(1). Finite differences of a
# 0-d gradient are measured against that gradient alone, so a leaf gradient that cancels to
# ~1e-3 sees the differences' rounding error eps |L| / h ~ 1e-8 relative to |L| ~ 100
# undiluted: an absolute 1e-6 floor (largest error seen over seeds 0-59: 3.3e-6 on a
# gradient of ~1e2, inside its relative part), again far below any wrong rule.
RANDOM_GRAPH_TOLERANCE = {"numpy-vs-torch:float32": Tolerance(rtol=3e-4),
                          "fd": Tolerance(rtol=FINITE_DIFFERENCE.rtol, atol=1e-6)}


def _graph_case(name: str, **options: Any) -> Case:
    random = "graph" not in options
    return Case(name, numpy=numpy_twin.Value, torch=torch_twin.Value, prepare=None,
                options=dict(kind="graph", **options),
                tolerance=RANDOM_GRAPH_TOLERANCE if random else {})


def _mlp_case(name: str, nouts: list[int], activation: str, **options: Any) -> Case:
    return Case(name, numpy=numpy_twin.MLP, torch=torch_twin.MLP, prepare=None,
                init=dict(nin=3, nouts=nouts, activation=activation),
                options=dict(kind="mlp", examples=4, steps=4, **options))


CONCEPT = Concept(
    name="micrograd",
    family="language",
    summary="a scalar reverse-mode autograd engine (Value) and an MLP of Values vs autograd "
            "on 0-d tensors",
    compares="expression graphs (micrograd's tests; random ones with hubs, shared "
             "sub-expressions, numbers on either side, +=): output, every leaf's grad, every "
             "node's data and grad; MLP(3, [4, 4, 1]) trained 4 SGD steps (tanh + squared "
             "error, relu + hinge + L2): loss, grads and weights per step; witness nn.Linear "
             "+ torch.optim.SGD",
    witness="nn.Linear + torch.optim.SGD (MLP cases)",
    run=run,
    extra_plots=extra_plots,
    cases=[
        _graph_case("sanity", graph=SANITY),
        _graph_case("more-ops", graph=MORE_OPS),
        _graph_case("random", leaves=4, ops=40, reuse=0.3),
        _graph_case("hubs", leaves=3, ops=60, reuse=0.7),   # a few nodes used dozens of times
        _graph_case("deep", leaves=2, ops=300, reuse=0.05),  # long chains of recent nodes
        _mlp_case("mlp-tanh", [4, 4, 1], "tanh", loss="mse", lr=0.05),
        _mlp_case("mlp-relu", [4, 4, 1], "relu", loss="hinge", lr=0.1, alpha=1e-3),
    ],
)

def print_losses(steps: int = 20, seed: int = 0) -> None:
    """Both twins' losses side by side while MLP(3, [4, 4, 1]) trains (float64)."""
    base = CONCEPT.case("mlp-tanh")
    case = Case(base.name, numpy=base.numpy, torch=base.torch, init=base.init,
                options={**base.options, "steps": steps})
    outcome = run_mlp(case, Trial("float64", seed=seed, builtin=False, fd=False))
    print(f"micrograd MLP(3, [4, 4, 1]), tanh, sum of squared errors, SGD lr "
          f"{case.options['lr']}, 4 examples, float64")
    print(f"{'step':>5} {'numpy loss':>16} {'torch loss':>16} {'|difference|':>13}")
    for k in range(steps):
        a, b = float(outcome.numpy[f"step{k}/loss"]), float(outcome.torch[f"step{k}/loss"])
        print(f"{k:>5} {a:>16.12f} {b:>16.12f} {abs(a - b):>13.2e}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m compare.language.micrograd [--steps N] [run options]``: the table, then
    both twins' training losses."""
    import argparse

    from compare.cli import main as cli_main
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--steps", type=int, default=20, help="training steps to print (20)")
    known, rest = parser.parse_known_args(argv)
    code = cli_main(["run", CONCEPT.name, *rest])
    if "--json" not in rest and "-h" not in rest and "--help" not in rest and code != 2:
        print()
        print_losses(steps=known.steps)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
