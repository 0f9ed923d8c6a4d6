"""The agreement suite: every registered concept x case x dtype. All three witnesses must
agree: NumPy vs torch, torch vs the built-in, NumPy backward vs finite differences (float64)."""
import pytest

from compare import registry
from compare.report import Report
from compare.runner import run_case

PARAMS = [pytest.param(concept, case, dtype, id=f"{concept.name}-{case.name}-{dtype}")
          for concept in registry.concepts().values()
          for case in concept.cases
          for dtype in case.dtypes]


@pytest.mark.parametrize("concept, case, dtype", PARAMS)
def test_twins_agree(concept, case, dtype):
    diffs = run_case(concept, case, dtype)
    report = Report(concept.name, concept.family, concept.summary, seed=0, diffs=diffs)
    assert report.passed, report.table()
    checks = {d.check for d in diffs}
    assert "numpy-vs-torch" in checks
    kinds = {d.kind for d in diffs}
    assert "output" in kinds or "value" in kinds
    if case.builtin is not None:
        assert "torch-vs-builtin" in checks
    if dtype == "float64" and case.fd and any(d.kind.endswith("gradient") for d in diffs):
        assert "numpy-vs-fd" in checks
    if dtype == "float32":
        assert all(d.referee for d in diffs if d.check == "numpy-vs-torch")
