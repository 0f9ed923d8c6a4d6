"""pytest support: ``assert_matches`` and the ``assert_matches`` fixture (plugin ``dualgrad``).

    from compare.testing import assert_matches

    def test_my_layernorm():
        assert_matches("layernorm", MyLayerNorm)        # fails with the readable report

or, without the import, through the fixture the installed plugin provides:

    def test_my_layernorm(assert_matches):
        assert_matches("layernorm", MyLayerNorm, dtype="float32")

Importing this module is cheap (torch loads only when a check runs), since pytest loads the
plugin in every session of an environment where dualgrad is installed.
"""
from __future__ import annotations

from typing import Any

import pytest


def assert_matches(concept: str, impl: Any, *, dtype: str = "float64", seed: int = 0) -> None:
    """Verify ``impl`` (see ``compare.verify``); raise AssertionError with the report if any
    tensor mismatches or the implementation fails to run."""
    __tracebackhide__ = True  # pytest shows the report, not this frame
    from compare.verify import verify
    report = verify(concept, impl, dtype=dtype, seed=seed)
    if not report.passed:
        raise AssertionError(f"{impl!r} does not match the {concept} references\n\n"
                             + report.table())


@pytest.fixture(name="assert_matches")
def assert_matches_fixture():
    """The ``assert_matches`` function, for tests that prefer a fixture to an import."""
    return assert_matches
