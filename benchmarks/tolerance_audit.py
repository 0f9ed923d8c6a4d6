"""Measure every tolerance override against the errors it actually has to admit.

    python benchmarks/tolerance_audit.py --seeds 100 [CONCEPT ...]

For each concept that overrides a default tolerance (a case's or the concept's ``tolerance``),
run every case in both dtypes over seeds 0 .. N-1 and print, per override key, the bound it
sets and the worst error of the tensors it governs: the largest ``max|a - b|`` (absolute, what
an ``atol`` must cover) and the largest normwise relative error (what an ``rtol`` must cover),
with the tensor and seed where each occurred. An override is tight when the measured worst is
within a small factor of its bound; the comment beside it quotes these numbers.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def audit(name: str, seeds: int) -> list[str]:
    from compare import registry
    from compare.runner import run_concept, tolerance_for, tolerance_scope
    concept = registry.get(name)
    worst: dict[tuple[str, str], dict] = {}
    for seed in range(seeds):
        report = run_concept(concept, seed=seed)
        if report.error:
            return [f"{name}: seed {seed}: {report.error}"]
        for d in report.diffs:
            case = concept.case(d.case)
            key = "fd" if d.check.endswith("-fd") else d.dtype
            scope = tolerance_scope(concept, case, d.check, key, d.name)
            if scope is None:
                continue
            entry = worst.setdefault((d.case if scope[0] == "case" else "*", scope[1]), {
                "bound": tolerance_for(concept, case, d.check, key, d.name),
                "abs": (0.0, "", 0), "rel": (0.0, "", 0), "failed": 0})
            where = f"{d.case}/{d.check}/{d.name.split('/')[-1]}"
            entry["abs"] = max(entry["abs"], (d.max_abs, where, seed))
            entry["rel"] = max(entry["rel"], (d.max_rel, where, seed))
            entry["failed"] += not d.passed
    lines = []
    for (case, key), e in sorted(worst.items()):
        t = e["bound"]
        lines.append(f"{name:<20} {case:<28} {key:<44} rtol {t.rtol:.0e} atol {t.atol:.0e} | "
                     f"worst rel {e['rel'][0]:.2e} ({e['rel'][1]}, seed {e['rel'][2]}) "
                     f"abs {e['abs'][0]:.2e} ({e['abs'][1]}, seed {e['abs'][2]})"
                     + (f" FAILED {e['failed']}x" if e["failed"] else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("concepts", nargs="*", help="concepts (default: those with overrides)")
    parser.add_argument("--seeds", type=int, default=100)
    args = parser.parse_args(argv)
    import torch

    from compare import registry
    torch.set_num_threads(1)
    names = args.concepts or [c.name for c in registry.concepts().values()
                              if c.tolerance or any(case.tolerance for case in c.cases)]
    for name in names:
        print("\n".join(audit(name, args.seeds)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
