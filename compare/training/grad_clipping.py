"""Compare gradient clipping: the same gradients clipped by each twin, every result by name.

Each case draws a handful of gradients once (a ``(3, 4)`` matrix, a ``(5,)`` vector, a 0-d
scalar and a ``(2, 3, 2)`` block, scaled by the case's ``scale`` so that clipping is active or
not), puts them into four parameters (NumPy ``Parameter``\\ s, torch leaf tensors), clips, and
compares:

- ``total_norm``: what ``clip_grad_norm_`` returns (the norm before clipping);
- ``grad.0`` .. ``grad.3``: every gradient after clipping.

``clip_grad_norm_`` cases: the 2-norm with clipping active (N >> max_norm) and inactive
(N < max_norm, the coefficient clamps to 1), norm types 1, 3, 0.5, inf, -inf and 0 (any real
p, as torch), a zero gradient (N = 0: the 1e-6 keeps the coefficient finite), a parameter
without a gradient (``grad`` None: skipped), and an infinite gradient element with
``error_if_nonfinite=False`` (N = inf, the coefficient 0: every finite element becomes 0, the
infinite one NaN, in both twins). ``clip_grad_value_`` cases: a clip value inside the range of
the gradients and one above it. The refusal of a non-finite norm with
``error_if_nonfinite=True`` is pinned in ``tests/training/test_grad_clipping.py``.

Twins: ``numpy_impl.training.grad_clipping`` (NumPy) and ``torch_impl.training.grad_clipping``
(torch ops); witness: ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_`` themselves.
Tolerance: the defaults (float64 1e-10, float32 1e-4); measured float64 agreement is exact or
within a few ulps.

Benchmark size: clip_grad_norm_ over the optimizers' MLP set, 1.86M elements in 6 arrays.

Run: ``python -m compare.training.grad_clipping``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from compare.concept import Bench, Case, Concept, Outcome, Trial
from numpy_impl import Parameter
from numpy_impl.training import grad_clipping as numpy_twin
from torch_impl.training import grad_clipping as torch_twin

SHAPES = ((3, 4), (5,), (), (2, 3, 2))


def _builtin(function: str) -> Any:
    def clip(*args: Any, **kwargs: Any) -> Any:
        import torch
        return getattr(torch.nn.utils, function)(*args, **kwargs)
    clip.__name__ = f"torch.nn.utils.{function}"
    return clip


def _case(name: str, function: str = "clip_grad_norm_", *, scale: float = 1.0,
          no_grad: tuple[int, ...] = (), zero: bool = False, inf_at: int | None = None,
          **kwargs: Any) -> Case:
    # fd=False: clipping is not differentiated, the gradients are its data
    return Case(name, numpy=getattr(numpy_twin, function), torch=getattr(torch_twin, function),
                builtin=_builtin(function), init=kwargs, prepare=None, fd=False,
                options=dict(function=function, scale=scale, no_grad=no_grad, zero=zero,
                             inf_at=inf_at))


def gradients(case: Case, trial: Trial) -> list[np.ndarray | None]:
    """The case's gradients, drawn once (None where the parameter has no gradient)."""
    rng = trial.rng()
    opts = case.options
    grads: list[np.ndarray | None] = []
    for i, shape in enumerate(SHAPES):
        g = opts["scale"] * rng.standard_normal(shape)
        if opts["zero"]:
            g = np.zeros(shape)
        if opts["inf_at"] == i:
            g.reshape(-1)[0] = np.inf
        grads.append(None if i in opts["no_grad"] else trial.cast(g))
    return grads


def _record(total: Any, grads: list[Any]) -> dict[str, np.ndarray]:
    values = {} if total is None else {"total_norm": np.asarray(total)}
    for i, g in enumerate(grads):
        if g is not None:
            values[f"grad.{i}"] = np.array(g, copy=True)
    return values


def run_numpy(case: Case, grads: list[np.ndarray | None], trial: Trial,
              clip: Any) -> dict[str, np.ndarray]:
    params = []
    for shape, g in zip(SHAPES, grads, strict=True):
        p = Parameter(np.zeros(shape, dtype=trial.np_dtype))
        p.grad = None if g is None else g.copy()
        params.append(p)
    total = clip(iter(params), **case.init)            # a generator, as model.parameters()
    return _record(total, [p.grad for p in params])


def run_torch(case: Case, grads: list[np.ndarray | None], trial: Trial,
              clip: Any) -> dict[str, np.ndarray]:
    import torch
    params = []
    for shape, g in zip(SHAPES, grads, strict=True):
        p = torch.zeros(shape, dtype=trial.torch_dtype, device=trial.device, requires_grad=True)
        p.grad = None if g is None else torch.from_numpy(g.copy()).to(trial.device)
        params.append(p)
    total = clip(iter(params), **case.init)
    return _record(None if total is None else total.detach().cpu().numpy(),
                   [None if p.grad is None else p.grad.cpu().numpy() for p in params])


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """``numpy_cls`` / ``torch_cls``: a user's clipping function in place of the twin's."""
    grads = gradients(case, trial)
    outcome = Outcome(numpy=run_numpy(case, grads, trial, numpy_cls or case.numpy),
                      torch=run_torch(case, grads, trial, torch_cls or case.torch))
    if trial.builtin and case.builtin is not None:
        outcome.builtin = run_torch(case, grads, trial, case.builtin)
    return outcome


BENCH_SHAPES = ((1024, 784), (1024,), (1024, 1024), (1024,), (10, 1024), (10,))


def _bench_work(trial: Trial) -> dict[str, Any]:
    """clip_grad_norm_(max_norm=1.0) over the optimizers' MLP parameter set (1.86M elements),
    clipping active; each step first restores the unclipped gradients (a copy, on every side)."""
    import torch
    rng = trial.rng()
    grads = [trial.cast(3.0 * rng.standard_normal(shape)) for shape in BENCH_SHAPES]
    numpy_params = [Parameter(np.zeros(shape, dtype=trial.np_dtype)) for shape in BENCH_SHAPES]

    def numpy_step() -> Any:
        for p, g in zip(numpy_params, grads, strict=True):
            p.grad = g.copy()
        return numpy_twin.clip_grad_norm_(numpy_params, max_norm=1.0)

    def torch_step(clip: Any) -> Any:
        leaves = [torch.zeros(shape, dtype=trial.torch_dtype, requires_grad=True)
                  for shape in BENCH_SHAPES]
        sources = [torch.from_numpy(g) for g in grads]

        def step() -> Any:
            for leaf, g in zip(leaves, sources, strict=True):
                leaf.grad = g.clone()
            return clip(leaves, max_norm=1.0)
        return step
    return {"numpy": numpy_step, "torch": torch_step(torch_twin.clip_grad_norm_),
            "builtin": torch_step(_builtin("clip_grad_norm_"))}


CONCEPT = Concept(
    name="grad_clipping",
    family="training",
    summary="clip_grad_norm_ (any norm_type) and clip_grad_value_ over NumPy Parameters, "
            "as torch.nn.utils",
    compares="the total norm and every clipped gradient: clip_grad_norm_ with the 2-norm "
             "(clipping active and not), norm_type 1, 3, 0.5, inf, -inf, 0, a zero gradient, a "
             "parameter without grad, an infinite element; clip_grad_value_",
    witness="torch.nn.utils.clip_grad_norm_, clip_grad_value_",
    bench=Bench("clip_grad_norm_(max_norm=1.0), clipping active, over an MLP's 1.86M gradients, "
                "shapes (1024, 784), (1024,), (1024, 1024), (1024,), (10, 1024), (10,)",
                work=_bench_work),
    run=run,
    cases=[
        _case("norm-2-clips", scale=3.0, max_norm=1.0),
        _case("norm-2-inactive", scale=0.05, max_norm=1.0),
        _case("norm-1", scale=1.0, max_norm=2.0, norm_type=1.0),
        _case("norm-3", scale=1.0, max_norm=0.5, norm_type=3.0),
        _case("norm-0.5", scale=1.0, max_norm=5.0, norm_type=0.5),
        _case("norm-inf", scale=2.0, max_norm=1.0, norm_type=math.inf),
        _case("norm-minus-inf", scale=2.0, max_norm=0.01, norm_type=-math.inf),
        _case("norm-0", scale=1.0, max_norm=4.0, norm_type=0.0),
        _case("zero-gradient", zero=True, max_norm=1.0),
        _case("param-without-grad", scale=3.0, no_grad=(1,), max_norm=1.0),
        _case("infinite-element", scale=1.0, inf_at=0, max_norm=1.0),
        _case("value-clips", "clip_grad_value_", scale=1.0, clip_value=0.5),
        _case("value-inactive", "clip_grad_value_", scale=0.01, clip_value=10.0),
    ],
)


if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
