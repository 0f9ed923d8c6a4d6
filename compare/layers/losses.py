"""Compare the losses: MSELoss, CrossEntropyLoss, NLLLoss, BCEWithLogitsLoss, every reduction.

Edge cases: class weights, ignore_index (some targets, every target, an index inside the class
range), label smoothing alone and with weights and ignored targets (torch normalizes the
smoothing term by the same Σ of target weights), K-dim input (N, C, d), a batch of one, logits
of size 1e4, BCE's pos_weight and weight, soft targets in [0, 1].
Witnesses: ``torch.nn.MSELoss``, ``CrossEntropyLoss``, ``NLLLoss``, ``BCEWithLogitsLoss``.
Run: ``python -m compare.layers.losses``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compare.concept import Bench, Case, Concept, Draw, fixed, randint, randn, uniform
from compare.tolerances import Tolerance
from numpy_impl.layers import losses as numpy_twin
from torch_impl.layers import losses as torch_twin

REDUCTIONS = ("mean", "sum", "none")


def _case(name: str, cls: str, input: Draw, target: Draw, fd: bool = True,
          tolerance: dict[str, Tolerance] | None = None, **init: Any) -> Case:
    """One case of loss ``cls`` (the same class name in both twins and in torch.nn)."""
    return Case(name, numpy=getattr(numpy_twin, cls), torch=getattr(torch_twin, cls),
                builtin=getattr(nn, cls), init=init, inputs=dict(input=input, target=target),
                fd=fd, tolerance=tolerance or {})


def _tensor(*values: Any) -> torch.Tensor:
    """A float64 constructor argument (weights); the engine loads it into each dtype."""
    return torch.tensor(values, dtype=torch.float64)


# Targets with ignore_index (-100) placed deliberately: rows 1 and 4 are ignored.
_SOME_IGNORED = fixed([2, -100, 0, 3, -100, 1])
_ALL_IGNORED = fixed([-100, -100, -100])
_K_DIM_TARGETS = fixed([[0, -100, 2], [1, 2, -100]])  # (N, d) = (2, 3), C = 3
_CLASS_WEIGHTS = _tensor(0.5, 2.0, 1.0, 1.5)
# Logits at 1e4: e^x overflows without the max shift. Rows 0-1 are centred far from 0 with an
# O(1) spread; rows 2-3 span ±1e4, their targets on the large logit (losses stay O(1), so the
# float64 central differences of the loss stay accurate).
_HUGE_LOGITS = fixed([[1e4 + 0.5, 1e4 - 1.0, 1e4, 1e4 + 2.0],
                      [-1e4, -1e4 + 1.5, -1e4 - 0.5, -1e4 + 0.2],
                      [1e4, -1e4, 0.0, 3.0],
                      [-1e4, 2.0, 1e4, -5e3]])
_HUGE_TARGETS = fixed([1, 3, 0, 2])
# BCE at 1e4: each huge logit has the target that makes its loss ~0, while the naive
# log(1 + e^{-x}) would overflow; moderate logits and a soft target in between.
_BCE_HUGE_LOGITS = fixed([[1e4, -1e4, 3.0, -2.0], [-1e4, 1e4, 0.5, 1e4]])
_BCE_HUGE_TARGETS = fixed([[1.0, 0.0, 0.3, 1.0], [0.0, 1.0, 0.9, 1.0]])

CASES = [
    # --- MSELoss ----------------------------------------------------------------------------
    _case("mse-mean", "MSELoss", randn(4, 5), randn(4, 5)),
    _case("mse-sum", "MSELoss", randn(4, 5), randn(4, 5), reduction="sum"),
    _case("mse-none-3d", "MSELoss", randn(2, 3, 4), randn(2, 3, 4), reduction="none"),
    # --- CrossEntropyLoss -------------------------------------------------------------------
    *[_case(f"ce-{r}", "CrossEntropyLoss", randn(6, 4, scale=2.0), randint(4, 6), reduction=r)
      for r in REDUCTIONS],
    _case("ce-weight", "CrossEntropyLoss", randn(6, 4), randint(4, 6), weight=_CLASS_WEIGHTS),
    _case("ce-ignore", "CrossEntropyLoss", randn(6, 4), _SOME_IGNORED),
    _case("ce-ignore-index-in-range", "CrossEntropyLoss", randn(6, 4), fixed([2, 1, 0, 3, 2, 1]),
          ignore_index=2, reduction="sum"),
    _case("ce-smoothing", "CrossEntropyLoss", randn(6, 4), randint(4, 6), label_smoothing=0.1),
    _case("ce-full-smoothing-none", "CrossEntropyLoss", randn(5, 4), randint(4, 5),
          label_smoothing=1.0, reduction="none"),
    *[_case(f"ce-weight-smoothing-ignore-{r}", "CrossEntropyLoss", randn(6, 4), _SOME_IGNORED,
            weight=_CLASS_WEIGHTS, label_smoothing=0.2, reduction=r) for r in REDUCTIONS],
    _case("ce-k-dim", "CrossEntropyLoss", randn(2, 3, 2, 2), randint(3, 2, 2, 2)),
    _case("ce-k-dim-weight-smoothing-ignore", "CrossEntropyLoss", randn(2, 3, 3),
          _K_DIM_TARGETS, weight=_tensor(1.0, 0.3, 2.0), label_smoothing=0.15),
    # fd off where every target is ignored: the mean loss is 0/0 = NaN, so are its finite
    # differences; the gradient is 0 by torch's convention (compared with torch's).
    _case("ce-all-ignored", "CrossEntropyLoss", randn(3, 4), _ALL_IGNORED, fd=False),
    _case("ce-all-ignored-weight-smoothing", "CrossEntropyLoss", randn(3, 4), _ALL_IGNORED,
          weight=_CLASS_WEIGHTS, label_smoothing=0.1, fd=False),
    _case("ce-all-ignored-sum", "CrossEntropyLoss", randn(3, 4), _ALL_IGNORED, reduction="sum"),
    _case("ce-huge-logits", "CrossEntropyLoss", _HUGE_LOGITS, _HUGE_TARGETS),
    # Label smoothing adds the mean of each row's log-probabilities, a sum of terms ~1e4 that
    # cancel: each loss carries rounding ~ulp(1e4) ~ 2e-12, which central differences divide
    # by their 2e-6 step. Measured over seeds 0-59: up to 1.5e-7 (4.7e-7 of a gradient of
    # 0.33) -- half the 1e-6 bound: the fd check alone gets an absolute floor 3x that.
    _case("ce-huge-logits-smoothing-none", "CrossEntropyLoss", _HUGE_LOGITS, _HUGE_TARGETS,
          label_smoothing=0.05, reduction="none",
          tolerance={"fd": Tolerance(rtol=1e-6, atol=5e-7)}),
    _case("ce-batch-of-one", "CrossEntropyLoss", randn(1, 5), randint(5, 1)),
    # --- NLLLoss ----------------------------------------------------------------------------
    *[_case(f"nll-{r}", "NLLLoss", randn(5, 4), randint(4, 5), reduction=r) for r in REDUCTIONS],
    _case("nll-weight-ignore", "NLLLoss", randn(6, 4), _SOME_IGNORED, weight=_CLASS_WEIGHTS),
    _case("nll-k-dim-weight-ignore-none", "NLLLoss", randn(2, 3, 3), _K_DIM_TARGETS,
          weight=_tensor(1.0, 0.3, 2.0), reduction="none"),
    _case("nll-all-ignored", "NLLLoss", randn(3, 4), _ALL_IGNORED, fd=False),  # 0/0, as above
    # --- BCEWithLogitsLoss ------------------------------------------------------------------
    *[_case(f"bce-{r}", "BCEWithLogitsLoss", randn(4, 3, scale=2.0), uniform(0.0, 1.0, 4, 3),
            reduction=r) for r in REDUCTIONS],
    _case("bce-pos-weight", "BCEWithLogitsLoss", randn(4, 3), fixed([[0.0, 1.0, 1.0]] * 4),
          pos_weight=_tensor(3.0, 0.5, 1.0)),
    _case("bce-weight-sum", "BCEWithLogitsLoss", randn(4, 3), uniform(0.0, 1.0, 4, 3),
          weight=_tensor([0.2], [1.0], [2.5], [0.7]), reduction="sum"),  # (N, 1): per sample
    _case("bce-weight-pos-weight-3d", "BCEWithLogitsLoss", randn(2, 3, 4),
          uniform(0.0, 1.0, 2, 3, 4), weight=_tensor(1.0, 0.5, 2.0, 1.5),
          pos_weight=_tensor(2.0, 1.0, 0.25, 4.0)),
    _case("bce-huge-logits", "BCEWithLogitsLoss", _BCE_HUGE_LOGITS, _BCE_HUGE_TARGETS),
    _case("bce-huge-logits-pos-weight-none", "BCEWithLogitsLoss", _BCE_HUGE_LOGITS,
          _BCE_HUGE_TARGETS, pos_weight=_tensor(2.0, 0.5, 1.0, 3.0), reduction="none"),
]

CONCEPT = Concept(
    name="losses",
    family="layers",
    summary="MSELoss, CrossEntropyLoss, NLLLoss, BCEWithLogitsLoss; reductions mean/sum/none",
    compares="loss; grads of input (and of a float target)",
    witness="nn.MSELoss, nn.CrossEntropyLoss, nn.NLLLoss, nn.BCEWithLogitsLoss",
    bench=Bench("CrossEntropyLoss, MSELoss, BCEWithLogitsLoss on (4096, 1000)", cases=(
        _case("bench-ce", "CrossEntropyLoss", randn(4096, 1000), randint(1000, 4096)),
        _case("bench-mse", "MSELoss", randn(4096, 1000), randn(4096, 1000)),
        _case("bench-bce", "BCEWithLogitsLoss", randn(4096, 1000),
              uniform(0.0, 1.0, 4096, 1000)))),
    cases=CASES,
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
