"""How often does the ``weight_init`` comparison fail when both twins are right?

The comparison claims a false-alarm rate <= ``FALSE_ALARM_RATE`` (1e-3) per full run: every
statistic of every case in both dtypes is held to a finite-sample bound at level
FALSE_ALARM_RATE / N_TESTS, and the union bound adds them up. This script runs the statistical
cases over many seeds (the built-in witness and the float32 referee are left out: they cannot
fail by chance) and counts

- runs that fail (the claim: <= 1e-3 of them, i.e. about 1 in 1,000 or fewer -- the bounds are
  conservative, so 0 is the expected count);
- each twin against the exact target distribution (``target_ratios``, same per-test level);
- the margin: the largest |numpy - torch| / atol seen, per statistic;
- the power: how often a deliberately wrong NumPy init (std 5% too large; fan_out in place of
  fan_in) is caught, on a subset of seeds.

    python benchmarks/weight_init_false_alarms.py [--seeds 1000] [--workers 2]
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import time
from typing import Any

import numpy as np

from compare.concept import Trial
from compare.runner import compare_outcome, tolerance_for
from compare.training import weight_init as concept_file
from numpy_impl.training import weight_init as numpy_twin

STAT_CASES = [c for c in concept_file.CASES if c.options.get("kind") != "gains"]


class TooWide(numpy_twin.Initialized):
    """A wrong init: every weight 5% too large."""

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.weight.data *= 1.05


class FanOut(numpy_twin.Initialized):
    """A wrong init: kaiming's fan_in swapped for fan_out (and vice versa)."""

    def __init__(self, shape: tuple[int, ...], scheme: str, bias: bool = False,
                 **options: Any) -> None:
        if scheme.startswith("kaiming"):
            mode = options.get("mode", "fan_in")
            options = {**options, "mode": "fan_out" if mode == "fan_in" else "fan_in"}
        super().__init__(shape, scheme, bias, **options)


def one_seed(seed: int, numpy_cls: Any = None) -> dict[str, Any]:
    """Run every statistical case in both dtypes for one seed."""
    import torch
    torch.set_num_threads(1)
    failed, target_failed, usage = False, False, {}
    concept = concept_file.CONCEPT
    for case in STAT_CASES:
        for dtype in concept_file.DTYPES:
            trial = Trial(dtype, seed=seed, builtin=False, fd=False)
            outcome = concept_file.run(case, trial, numpy_cls=numpy_cls)
            diffs = compare_outcome(
                outcome, case, dtype,
                tolerance=lambda check, key, name, case=case: tolerance_for(concept, case, check,
                                                                            key, name))
            failed |= not all(d.passed for d in diffs)
            for d in diffs:
                stat = d.name.split("/")[1]
                usage[stat] = max(usage.get(stat, 0.0), d.max_abs / d.tolerance.atol)
            if numpy_cls is None:
                target_failed |= _target_fails(case, outcome)
    return {"seed": seed, "failed": failed, "target_failed": target_failed, "usage": usage}


def _target_fails(case: Any, outcome: Any) -> bool:
    """Each twin's sample against the exact target, every statistic at the per-test level."""
    for side in (outcome.numpy, outcome.torch):
        for name, n in concept_file._param_sizes(case.init["shape"],
                                                 case.init.get("bias", False)).items():
            dist = concept_file.target(case.init["shape"], case.init["scheme"], name,
                                       **concept_file._options(case))
            stats = {k: side[f"{name}/{k}"] for k in ("ecdf", "mean", "second_moment")}
            ratios = concept_file.ratios_from_statistics(stats, n, dist.kind,
                                                         concept_file.ALPHA_PER_TEST)
            if max(ratios.values()) > 1.0:
                return True
    return False


def _broken(args: tuple[int, str]) -> bool:
    seed, which = args
    return one_seed(seed, {"too-wide": TooWide, "fan-out": FanOut}[which])["failed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--power-seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=max(1, multiprocessing.cpu_count()))
    args = parser.parse_args()

    started = time.perf_counter()
    with multiprocessing.Pool(args.workers) as pool:
        results = pool.map(one_seed, range(args.seeds), chunksize=4)
        power = {which: pool.map(_broken, [(s, which) for s in range(args.power_seeds)])
                 for which in ("too-wide", "fan-out")}
    seconds = time.perf_counter() - started

    n_fail = sum(r["failed"] for r in results)
    n_target = sum(r["target_failed"] for r in results)
    rate = concept_file.FALSE_ALARM_RATE
    print(f"weight_init: {len(STAT_CASES)} statistical cases x {len(concept_file.DTYPES)} "
          f"dtypes, {concept_file.N_TESTS} two-sample tests per run, each at level "
          f"{concept_file.ALPHA_PER_TEST:.2e}")
    print(f"stated false-alarm rate: <= {rate:g} per run -> expected <= {rate * args.seeds:g} "
          f"failing runs of {args.seeds}")
    print(f"failing runs (numpy vs torch, correct twins): {n_fail} of {args.seeds}")
    print(f"failing runs (each twin vs the exact target): {n_target} of {args.seeds}")
    print("largest |numpy - torch| / critical value over all seeds (1 = the bound): "
          + ", ".join(f"{k} {max(r['usage'][k] for r in results):.2f}"
                      for k in ("ecdf", "mean", "second_moment")))
    median = {k: float(np.median([r["usage"][k] for r in results]))
              for k in ("ecdf", "mean", "second_moment")}
    print("median per run of the largest ratio: "
          + ", ".join(f"{k} {v:.2f}" for k, v in median.items()))
    for which, caught in power.items():
        print(f"power: a NumPy init that is {which!r} is caught in {sum(caught)} of "
              f"{len(caught)} runs")
    print(f"({seconds:.0f} s on {args.workers} workers; "
          f"{math.ceil(seconds / max(1, args.seeds) * 1000)} ms per seed)")


if __name__ == "__main__":
    main()
