"""The Python API, for notebooks and scripts: the command line's verbs as functions.

    from compare import run, verify, show, list_concepts

    report = run("layernorm", dtype="float32", seed=3)   # a Report
    report.passed, report.failures                       # the verdict, the failing diffs
    report                                               # short repr; HTML in a notebook
    fig = report.plot()                                  # a matplotlib Figure (no pyplot)
    print(show("layernorm"))                             # both twins' code side by side
    list_concepts()                                      # every concept's name

A concept is given by name (``"layernorm"``, ``"layers/layernorm"``) or as a ``Concept``.
A bad argument raises one ``ValueError`` that names the argument; nothing here touches
matplotlib's global state or torch's thread count.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compare import registry
from compare.concept import Concept
from compare.report import Report
from compare.tolerances import DTYPES

MAX_SEED = 2**32 - 1

__all__ = ["list_concepts", "run", "show", "verify"]


def _concept(concept: str | Concept, argument: str = "concept") -> Concept:
    if isinstance(concept, Concept):
        return concept
    if not isinstance(concept, str):
        raise ValueError(f"{argument} must be a concept name or a Concept, "
                         f"got {type(concept).__name__}")
    try:
        return registry.get(concept.partition(":")[0])
    except registry.UnknownConcept as error:
        raise ValueError(f"{argument}: {error}") from None


def _seed(seed: Any) -> int:
    # bool is an int subclass, and a float seed (1e23) is a mistake, not a seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return seed


def _cases(concept: Concept, cases: Sequence[str] | str | None) -> list[str] | None:
    if cases is None:
        return None
    if isinstance(cases, str):
        cases = [cases]
    known = [c.name for c in concept.cases]
    if not cases:
        raise ValueError("cases: an empty selection runs nothing; pass None for every case")
    unknown = [c for c in cases if c not in known]
    if unknown:
        raise ValueError(f"cases: {concept.name} has no case {', '.join(map(repr, unknown))}; "
                         f"its cases: {', '.join(known)}")
    return list(cases)


def _device(device: Any) -> str:
    kind, _, index = str(device).partition(":")
    if not isinstance(device, str) or kind not in ("cpu", "cuda") or (
            index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    if kind == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available on this machine")
    return device


def list_concepts(family: str | None = None) -> list[str]:
    """Every concept's name, in family order (only ``family``'s when given)."""
    if family is not None and family not in registry.FAMILIES:
        raise ValueError(f"family must be one of {', '.join(registry.FAMILIES)}, got {family!r}")
    return [c.name for c in registry.concepts().values() if family in (None, c.family)]


def run(concept: str | Concept, *, dtype: str = "both", seed: int = 0,
        cases: Sequence[str] | str | None = None, device: str = "cpu") -> Report:
    """Compare the twins of one concept (``dualgrad run``): every case (or ``cases``), in
    ``dtype`` float64, float32 or both; returns the ``Report``."""
    from compare.runner import run_concept
    resolved = _concept(concept)
    if dtype not in (*DTYPES, "both"):
        raise ValueError(f"dtype must be float64, float32 or both, got {dtype!r}")
    dtypes = list(DTYPES) if dtype == "both" else [dtype]
    return run_concept(resolved, dtypes=dtypes, seed=_seed(seed), device=_device(device),
                       cases=_cases(resolved, cases))


def verify(concept: str | Concept, impl: Any, *, dtype: str = "float64", seed: int = 0,
           cases: Sequence[str] | str | None = None) -> Report:
    """Check your own implementation (``dualgrad verify``); see ``compare.verify``. ``impl``
    is a class, a ``(forward, backward)`` pair, or ``"file.py:Name"``."""
    import importlib
    verify_module = importlib.import_module("compare.verify")  # the module, not this function
    resolved = _concept(concept)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be float64 or float32, got {dtype!r}")
    _seed(seed)
    selected = _cases(resolved, cases)
    spec = concept if isinstance(concept, str) else resolved
    try:
        if isinstance(impl, str):
            impl = verify_module.load(impl)
        return verify_module.verify(spec, impl, dtype=dtype, seed=seed, cases=selected)
    except verify_module.VerifyError as error:
        raise ValueError(str(error)) from None


class Code(str):
    """Text that a notebook shows as text (its repr is itself, not a quoted string)."""

    def __repr__(self) -> str:
        return str(self)


def show(concept: str | Concept, width: int = 160) -> Code:
    """The NumPy and the PyTorch code of ``concept`` side by side, ``width`` columns."""
    from compare.cli import UsageError, side_by_side, source_files
    if isinstance(concept, Concept):
        numpy_path = concept.source_path("numpy_impl")
        torch_path = concept.source_path("torch_impl")
    elif isinstance(concept, str):
        try:  # found without importing any concept: show needs no torch
            numpy_path, torch_path = source_files(concept)
        except UsageError as error:
            raise ValueError(f"concept: {error}") from None
    else:
        raise ValueError(f"concept must be a concept name or a Concept, "
                         f"got {type(concept).__name__}")
    if isinstance(width, bool) or not isinstance(width, int) or not 43 <= width <= 1000:
        raise ValueError(f"width must be a whole number of columns from 43 to 1000, "
                         f"got {width!r}")
    root = numpy_path.parent.parent.parent
    return Code(side_by_side(numpy_path.read_text(encoding="utf-8"),
                             torch_path.read_text(encoding="utf-8"),
                             str(numpy_path.relative_to(root)),
                             str(torch_path.relative_to(root)), width))
