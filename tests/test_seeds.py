"""No verdict depends on the seed: every concept agrees on five seeds besides the default.

float64 with the twins and the built-in witness, without finite differences (they cost two
forward passes per checked element and are swept over many seeds by benchmarks/seed_sweep.py),
so that the whole registry stays within about a minute on the 2-core machine.
"""
import pytest

from compare import registry
from compare.runner import run_concept

SEEDS = (1, 2, 3, 4, 5)


@pytest.mark.parametrize("name", list(registry.concepts()))
def test_every_concept_agrees_on_other_seeds(name):
    concept = registry.get(name)
    failing = {}
    for seed in SEEDS:
        report = run_concept(concept, dtypes=("float64",), seed=seed, fd=False)
        if not report.passed:
            failing[seed] = report.error or sorted({f"{d.case}/{d.check}/{d.name}"
                                                    for d in report.failures})[:5]
    assert not failing, f"{name}: verdicts change with the seed: {failing}"
