"""Discover concepts: every ``compare/<family>/<concept>.py`` that defines ``CONCEPT``."""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from pathlib import Path

from compare.concept import Concept

FAMILIES = ("layers", "vision", "sequence", "transformer", "training", "language",
            "alignment", "evaluation", "advanced")

_ROOT = Path(__file__).resolve().parent
_cache: dict[str, Concept] | None = None


class UnknownConcept(KeyError):
    """A concept name that is not registered; the message suggests the closest names."""

    def __str__(self) -> str:
        return str(self.args[0])


def concepts() -> dict[str, Concept]:
    """All concepts by name, in family order, then file name order."""
    global _cache
    if _cache is None:
        found: dict[str, Concept] = {}
        for family in FAMILIES:
            folder = _ROOT / family
            if not folder.is_dir():
                continue
            for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda i: i.name):
                if info.name.startswith("_"):
                    continue
                module = importlib.import_module(f"compare.{family}.{info.name}")
                concept = getattr(module, "CONCEPT", None)
                if not isinstance(concept, Concept):
                    raise TypeError(f"compare/{family}/{info.name}.py defines no CONCEPT")
                if (concept.family, concept.name) != (family, info.name):
                    raise ValueError(f"compare/{family}/{info.name}.py declares "
                                     f"{concept.family}/{concept.name}; names must match the file")
                if concept.name in found:
                    raise ValueError(f"concept name {concept.name!r} is used twice")
                found[concept.name] = concept
        _cache = found
    return _cache


def get(name: str) -> Concept:
    """A concept by name (``layernorm`` or ``layers/layernorm``)."""
    registry = concepts()
    key = name.split("/")[-1]
    concept = registry.get(key)
    if concept is None or ("/" in name and concept.qualified_name != name):
        close = difflib.get_close_matches(key, list(registry), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else \
            "; 'dualgrad list' shows every concept"
        raise UnknownConcept(f"unknown concept {name!r}{hint}")
    return concept


def family(name: str) -> list[Concept]:
    return [c for c in concepts().values() if c.family == name]
