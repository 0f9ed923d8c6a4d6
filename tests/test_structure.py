"""Project rules: numpy_impl never imports torch; the three trees mirror each other; every
concept is registered, runnable as a module, and has a row in the README's concept table."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from compare import registry

ROOT = Path(__file__).resolve().parent.parent
TREES = ("numpy_impl", "torch_impl", "compare")


def _concept_files(tree: str) -> set[str]:
    found = set()
    for family in registry.FAMILIES:
        for path in (ROOT / tree / family).glob("*.py"):
            if not path.name.startswith("_"):
                found.add(f"{family}/{path.name}")
    return found


def test_numpy_impl_has_no_torch_import_statement():
    offenders = []
    for path in (ROOT / "numpy_impl").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] == "torch"]
    assert offenders == []


def test_importing_every_numpy_twin_loads_no_torch():
    code = ("import importlib, pkgutil, sys, numpy_impl\n"
            "for m in pkgutil.walk_packages(numpy_impl.__path__, 'numpy_impl.'):\n"
            "    importlib.import_module(m.name)\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_three_trees_mirror_each_other():
    files = {tree: _concept_files(tree) for tree in TREES}
    assert files["numpy_impl"], "no concept files found"
    for tree in TREES:
        for other in TREES:
            assert files[tree] - files[other] == set(), f"in {tree} but not in {other}"


def test_every_comparison_file_is_a_registered_concept():
    registered = {f"{c.family}/{c.name}.py" for c in registry.concepts().values()}
    assert registered == _concept_files("compare")


@pytest.mark.parametrize("name", list(registry.concepts()))
def test_concept_has_a_readme_row_with_its_files(name):
    concept = registry.get(name)
    rows = [line for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("|") and f"| {concept.name} |" in line]
    assert rows, f"no README concept-table row for {name}"
    assert f"numpy_impl/{concept.family}/{concept.name}.py" in rows[0]
    assert f"torch_impl/{concept.family}/{concept.name}.py" in rows[0]


@pytest.mark.parametrize("name", list(registry.concepts()))
def test_concept_has_cases_and_a_summary(name):
    concept = registry.get(name)
    assert concept.summary and concept.compares and concept.cases
    assert len({c.name for c in concept.cases}) == len(concept.cases), "duplicate case names"


def test_no_unfinished_markers_in_the_trees():
    """No stubs -- except the exercise skeletons' bodies, which the user is meant to fill."""
    markers = ("TODO", "FIXME", "XXX", "NotImplementedError")
    hits = [f"{p.relative_to(ROOT)}: {line.strip()}"
            for tree in TREES for p in (ROOT / tree).rglob("*.py")
            for line in p.read_text().splitlines()
            if any(m in line for m in markers) and "exercise" not in line]
    assert hits == []
