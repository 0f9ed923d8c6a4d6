"""A micrograd-style engine as people actually have it: probed for what it supports.

The real micrograd ``Value`` has no ``exp``, ``log``, ``sigmoid`` or ``tanh`` and takes only
numbers as exponents; the lecture's has ``tanh`` and ``exp`` but no ``relu``, no ``2 - v`` and
no ``2 / v``. ``supported(Value)`` tries every operation the concept's graphs use (forward and
``backward()`` on fresh Values) and returns those that work. Then, per case (``adapt``):

- a fixed graph (micrograd's own tests) that needs a missing operation is skipped, with the
  list of what is missing;
- a random graph is drawn again from the same seed with only the supported operations (the
  references run on that same graph), so every engine gets random graphs it can express;
- a ReLU-only ``MLP(nin, nouts)`` (no ``activation`` argument) runs the ReLU case and skips the
  tanh one; ``to`` and ``load_state_dict`` are supplied when it lacks them, loading the
  reference's weights by micrograd's own layout (``layers[k].neurons[j].w[i]`` and ``.b``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from compare.concept import Case, Trial
from compare.verify.adapters import Skip

_PROBES: dict[str, Callable[[Any, Any], Any]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "powv": lambda a, b: a ** b,
    "radd": lambda a, b: 2.0 + a, "rsub": lambda a, b: 2.0 - a, "rmul": lambda a, b: 2.0 * a,
    "rdiv": lambda a, b: 2.0 / a, "rpow": lambda a, b: 2.0 ** a,
    "addc": lambda a, b: a + 2.0, "subc": lambda a, b: a - 2.0, "mulc": lambda a, b: a * 2.0,
    "divc": lambda a, b: a / 2.0, "pow": lambda a, b: a ** 1.5,
    "neg": lambda a, b: -a, "relu": lambda a, b: a.relu(), "tanh": lambda a, b: a.tanh(),
    "exp": lambda a, b: a.exp(), "log": lambda a, b: a.log(), "sigmoid": lambda a, b: a.sigmoid(),
}


def supported(value_cls: type) -> set[str]:
    """The graph operations ``value_cls`` can run forward and backward."""
    found = set()
    for name, probe in _PROBES.items():
        try:
            a, b = value_cls(1.5), value_cls(0.5)
            out = probe(a, b)
            out.backward()
            float(out.data), float(a.grad)
        except Exception:  # noqa: BLE001 -- any failure means: not supported
            continue
        found.add(name)
    if "add" in found:
        found.add("iadd")  # v += w falls back to v = v + w
    return found


def _operations(graph: Any) -> set[str]:
    return {op[0] for op in graph.ops}


@contextlib.contextmanager
def _only(operations: set[str]) -> Iterator[None]:
    """The random-graph generator's operation tables narrowed to ``operations``."""
    from compare.support import micrograd_graphs as graphs
    names = ("_BINARY", "_UNARY", "_NUMBER_LEFT", "_NUMBER_RIGHT")
    originals = {name: getattr(graphs, name) for name in names}
    try:
        for name, table in originals.items():
            narrowed = {k: v for k, v in table.items() if k in operations}
            if not narrowed:
                raise Skip(f"this Value supports none of {', '.join(table)}")
            setattr(graphs, name, narrowed)
        yield
    finally:
        for name, table in originals.items():
            setattr(graphs, name, table)


def graph_adapter(value_cls: type) -> Callable[[Case, Trial], Case]:
    """For a user's ``Value``: each case as it can run (or ``Skip`` with what is missing)."""
    from compare.support.micrograd_graphs import random_graph
    operations = supported(value_cls)
    name = value_cls.__name__

    def adapt(case: Case, trial: Trial) -> Case:
        options = case.options
        if options.get("kind") != "graph":
            return case
        if "graph" in options:
            missing = sorted(_operations(options["graph"]) - operations)
            if missing:
                raise Skip(f"{name} has no {', '.join(missing)} (needed by this graph)")
            return case
        with _only(operations):
            graph = random_graph(trial.rng(), options["leaves"], options["ops"],
                                 options["reuse"])
        missing = sorted(_operations(graph) - operations)
        if missing:
            raise Skip(f"{name} has no {', '.join(missing)} (needed by every random graph)")
        return dataclasses.replace(case, options={**options, "graph": graph})

    adapt.operations = operations  # type: ignore[attr-defined]
    return adapt


def mlp_class(cls: type) -> tuple[type, Callable[[Case, Trial], Case]]:
    """A user's micrograd ``MLP`` made loadable, and which MLP cases it can run."""
    takes_activation = "activation" in inspect.signature(cls).parameters

    class Loadable(cls):  # type: ignore[misc, valid-type]
        def __init__(self, nin: int, nouts: list[int], activation: str = "relu") -> None:
            if takes_activation:
                super().__init__(nin, nouts, activation=activation)
            else:
                super().__init__(nin, nouts)

        def _neurons(self) -> Iterator[tuple[str, Any]]:
            for k, layer in enumerate(self.layers):
                for j, neuron in enumerate(layer.neurons):
                    yield f"layers.{k}.neurons.{j}", neuron

        def to(self, dtype: Any) -> Any:
            if callable(getattr(super(), "to", None)):
                return super().to(dtype)
            for p in self.parameters():
                p.data = np.dtype(dtype).type(p.data)
            return self

        def load_state_dict(self, state: dict[str, Any]) -> None:
            if callable(getattr(super(), "load_state_dict", None)):
                return super().load_state_dict(state)
            for prefix, neuron in self._neurons():
                neuron.b.data = state[f"{prefix}.b"].dtype.type(state[f"{prefix}.b"])
                for i, w in enumerate(neuron.w):
                    w.data = state[f"{prefix}.w.{i}"].dtype.type(state[f"{prefix}.w.{i}"])
            return None

    Loadable.__name__ = Loadable.__qualname__ = cls.__name__

    def adapt(case: Case, trial: Trial) -> Case:
        activation = case.init.get("activation", "tanh")
        if case.options.get("kind") == "mlp" and not takes_activation and activation != "relu":
            raise Skip(f"{cls.__name__}(nin, nouts) is ReLU-only: it cannot express "
                       f"activation={activation!r}")
        return case

    return Loadable, adapt


def adapter(concept_name: str, cls: Any) -> tuple[Any, Callable[[Case, Trial], Case] | None]:
    """(the class to run, the case adapter) for a user's class of the micrograd concept."""
    if concept_name != "micrograd" or not inspect.isclass(cls):
        return cls, None
    if hasattr(cls, "layers") or "nouts" in inspect.signature(cls).parameters:
        return mlp_class(cls)
    return cls, graph_adapter(cls)
