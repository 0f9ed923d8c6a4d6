"""``dualgrad bench``: how fast each twin runs one forward and backward, per concept.

For every case of a module concept, both twins get the same weights, inputs and upstream
gradient (as in a comparison); each forward + backward is timed ``repeat`` times and the
median kept. A concept's time is the sum over its cases. Concepts with their own runner
(optimizers, training loops) have their own scripts under ``benchmarks/``.

Timings on a shared machine are noisy: this is a benchmark to read, never a test to pass.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from compare.concept import Case, Concept, Trial
from compare.runner import flatten, initial_state, numpy_twin, torch_module, unflatten


@dataclass
class Timing:
    concept: str
    cases: int
    numpy_ms: float
    torch_ms: float

    @property
    def ratio(self) -> float:
        return self.numpy_ms / self.torch_ms if self.torch_ms else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {"concept": self.concept, "cases": self.cases, "numpy_ms": self.numpy_ms,
                "torch_ms": self.torch_ms, "numpy_over_torch": self.ratio}


def median_ms(step: Callable[[], Any], repeat: int) -> float:
    step()  # warm-up: first calls allocate and dispatch
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _time_case(case: Case, trial: Trial, repeat: int) -> tuple[float, float]:
    import torch
    rng = trial.rng()
    state = initial_state(case, trial, rng)
    inputs = {name: trial.cast(draw(rng)) for name, draw in case.inputs.items()}
    twin = torch_module(case.torch, case, state, trial)
    leaves = [torch.from_numpy(np.array(x)).requires_grad_(np.issubdtype(x.dtype, np.floating))
              for x in inputs.values()]
    structure = twin(*leaves)
    upstream = {name: trial.cast(rng.standard_normal(tuple(t.shape)))
                for name, t in flatten(structure) if t.requires_grad}
    grads = {name: torch.from_numpy(g) for name, g in upstream.items()}

    def torch_step() -> None:
        pairs = [(t, grads[name]) for name, t in flatten(twin(*leaves)) if name in grads]
        torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])

    module = numpy_twin(case, state, trial)
    grad_output = unflatten(structure, upstream)

    def numpy_step() -> None:
        module(*inputs.values())
        module.backward(grad_output)

    return median_ms(numpy_step, repeat), median_ms(torch_step, repeat)


def bench(concept: Concept, dtype: str = "float64", repeat: int = 20) -> Timing | None:
    """Summed median forward+backward time of each twin over the concept's cases; None for
    a concept with its own runner."""
    if concept.run is not None:
        return None
    trial = Trial(dtype=dtype, seed=0)
    numpy_ms = torch_ms = 0.0
    for case in concept.cases:
        n, t = _time_case(case, trial, repeat)
        numpy_ms, torch_ms = numpy_ms + n, torch_ms + t
    return Timing(concept.name, len(concept.cases), numpy_ms, torch_ms)
