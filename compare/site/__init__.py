"""The HTML report and static site (``dualgrad report``): ``build`` writes the folder, ``html``
renders the pages and the comparison table, ``align`` pairs the NumPy and the torch code by
role for the side-by-side view.

The builder's names are re-exported lazily: every report imports ``compare.site.html``, and
that must not load the builder's process pool (20 ms on every ``import compare``).
"""
import importlib
from typing import Any

__all__ = ["MARKER", "SiteError", "build_page", "build_site", "prepare_directory"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("compare.site.build"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
