"""Run every concept over many seeds and report any verdict that changes with the seed.

    python benchmarks/seed_sweep.py --seeds 1000 --jobs 2 [--out FILE] [CONCEPT ...]

A verdict must not depend on the seed: where a gradient is undefined at the drawn point (a
tie, a kink, an exact zero) the case is constructed so the answer is defined. This sweep runs
``run_concept`` (every case, both dtypes, every check: the twins, the built-in witness, finite
differences) for seeds 0 .. N-1, one (concept, seed) task per process slot, and appends one
JSON line per task to ``--out``; a second run skips what the file already holds, so the sweep
can be stopped and resumed (or extended with a larger ``--seeds``). Each line keeps the
verdict, the failing tensors, and per case, dtype and check the tensor closest to its bound,
which is what an audit of the tolerances needs. At the end (or with ``--table`` alone) it
prints, per concept, how many seeds ran and agreed, the seeds that failed with the tensors
that failed, and the largest fraction of a bound any tensor used.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before NumPy loads: one thread per process

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "out" / "seed_sweep.jsonl"


def run_one(task: tuple[str, int]) -> dict:
    """One concept at one seed: the verdict and what the audit needs, as a JSON-able dict."""
    import torch

    from compare import registry
    from compare.report import split_step
    from compare.runner import run_concept
    torch.set_num_threads(1)
    name, seed = task
    started = time.perf_counter()
    report = run_concept(registry.get(name), seed=seed)
    closest: dict[str, list] = {}  # "case|dtype|check" -> [usage, tensor, max_rel]
    for d in report.diffs:
        key = f"{d.case}|{d.dtype}|{d.check}"
        usage = d.usage if d.usage != float("inf") else 1e300
        if key not in closest or usage > closest[key][0]:
            closest[key] = [usage, split_step(d.name)[0], d.max_rel]
    return {"concept": name, "seed": seed, "passed": report.passed, "error": report.error,
            "failing": sorted({f"{d.case}|{d.dtype}|{d.check}|{split_step(d.name)[0]}"
                               for d in report.failures}),
            "closest": closest, "seconds": round(time.perf_counter() - started, 2)}


def done_tasks(path: Path) -> set[tuple[str, int]]:
    if not path.exists():
        return set()
    done = set()
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by an interrupted run: redo it
            continue
        done.add((record["concept"], record["seed"]))
    return done


def records(path: Path) -> Iterable[dict]:
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def table(path: Path) -> str:
    """Per concept: seeds run, seeds agreeing, failing seeds and tensors, the closest bound."""
    by_concept: dict[str, list[dict]] = defaultdict(list)
    for record in records(path):
        by_concept[record["concept"]].append(record)
    lines = [f"{'concept':<22} {'seeds':>6} {'agree':>6}  {'max usage':>9}  failing seeds "
             "(tensors)"]
    changing = 0
    for name, runs in by_concept.items():
        runs.sort(key=lambda r: r["seed"])
        failed = [r for r in runs if not r["passed"]]
        usage = max((v[0] for r in runs if r["passed"] for v in r["closest"].values()),
                    default=0.0)
        detail = ""
        if failed:
            changing += len(failed) < len(runs)
            tensors = sorted({t for r in failed for t in r["failing"]})[:4]
            errors = sorted({r["error"] for r in failed if r["error"]})[:1]
            detail = (", ".join(str(r["seed"]) for r in failed[:12])
                      + (" ..." if len(failed) > 12 else "")
                      + f" ({'; '.join(tensors + errors)})")
        lines.append(f"{name:<22} {len(runs):>6} {len(runs) - len(failed):>6}  "
                     f"{100 * usage:>8.1f}%  {detail or '-'}")
    seeds = {r["seed"] for runs in by_concept.values() for r in runs}
    lines.append(f"\n{len(by_concept)} concepts, {len(seeds)} seeds "
                 f"({min(seeds, default=0)}..{max(seeds, default=0)}); verdicts that change with "
                 f"the seed: {changing} concept(s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("concepts", nargs="*", help="concepts to sweep (default: every one)")
    parser.add_argument("--seeds", type=int, default=1000, help="seeds 0 .. N-1 (1000)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON lines ({DEFAULT_OUT})")
    parser.add_argument("--table", action="store_true", help="only print the table of --out")
    args = parser.parse_args(argv)
    if not args.table:
        from multiprocessing import get_context

        from compare import registry
        names = args.concepts or list(registry.concepts())
        done = done_tasks(args.out)
        # seed-major order: every concept reaches seed k before any reaches k + 1
        tasks = [(n, s) for s in range(args.seeds) for n in names if (n, s) not in done]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        print(f"{len(tasks)} tasks to run ({len(done)} already in {args.out})", flush=True)
        started = time.perf_counter()
        with get_context("spawn").Pool(args.jobs, maxtasksperchild=200) as pool, \
                args.out.open("a") as out:
            for k, record in enumerate(pool.imap_unordered(run_one, tasks), 1):
                out.write(json.dumps(record) + "\n")
                out.flush()
                if not record["passed"]:
                    print(f"FAIL {record['concept']} seed {record['seed']}: "
                          f"{record['failing'][:3]} {record['error']}", flush=True)
                if k % 50 == 0:
                    print(f"{k}/{len(tasks)} tasks, {time.perf_counter() - started:.0f} s",
                          flush=True)
    print(table(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
