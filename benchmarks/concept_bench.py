"""The README's concept benchmark table: ``dualgrad bench`` over every concept, as Markdown.

Runs ``python -m compare bench --json`` (every concept at its declared benchmark size, both
dtypes, NumPy twin / torch twin / torch built-in, interleaved repeats after a warm-up) with the
given threads and clock, or reads the JSON lines a previous run wrote (``--from FILE``), and
prints one Markdown row per concept: the median ratio NumPy twin / torch built-in (the torch twin
where there is no built-in) in float32 and float64, the medians in ms of each contender, the
peak memory, the benchmark size, then the geometric mean per dtype and the environment (BLAS and
its threads in force, torch threads and CPU capability, date).

Run: ``python benchmarks/concept_bench.py [CONCEPT ...] [--threads N] [--clock cpu|wall]
[--repeat N] [--json-out FILE] [--plot FILE] [--compact]`` or
``python benchmarks/concept_bench.py --from FILE [--with FILE2] [--compact]`` (``--with``: a
second run, e.g. with 2 threads, whose ratios become two more columns). On a machine shared with
other processes, ``--clock cpu`` (this process's CPU time) with one thread is the steadiest;
with more threads use the wall clock (CPU time would add up the threads).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_bench(concepts: list[str], threads: int, clock: str, repeat: int,
              plot: Path | None) -> list[dict]:
    """``dualgrad bench --json`` in a fresh process (its BLAS threads set before NumPy loads)."""
    command = [sys.executable, "-m", "compare", "bench", *concepts, "--threads", str(threads),
               "--clock", clock, "--repeat", str(repeat), "--json"]
    if plot is not None:
        command += ["--plot", str(plot)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _ratio(row: dict | None, with_min: bool = False) -> str:
    """The median ratio, and (``with_min``) the ratio of the minima in brackets: where the
    two differ much, a neighbour disturbed the runs and the minimum is the better guess."""
    if row is None or row["ratio_median"] is None:
        return "n/a"
    return f"{row['ratio_median']:.2f}x" + (f" ({row['ratio_min']:.2f}x)" if with_min else "")


def _by_concept(records: list[dict]) -> dict[str, dict[str, dict]]:
    by_concept: dict[str, dict[str, dict]] = {}
    for row in records:
        if "concept" in row:
            by_concept.setdefault(row["concept"], {})[row["dtype"]] = row
    return by_concept


def _environment(records: list[dict]) -> str:
    env = next(r["environment"] for r in records if "environment" in r)
    runs = next((r["runs"] for r in records if "concept" in r), 0)
    return (f"{env['date']}; numpy {env['numpy']} with {env['blas']} ({env['blas_threads']} BLAS "
            f"thread(s) in force), torch {env['torch']} ({env['torch_threads']} thread(s), CPU "
            f"capability {env['torch_cpu_capability']}), {env['cpus']} CPUs; clock "
            f"{env['clock']}; medians of {runs} interleaved runs after a warm-up")


def markdown(records: list[dict], second: list[dict] | None = None) -> str:
    """The table: one row per concept, float32 and float64 side by side; with ``second`` (a
    run with other threads), its median ratios in two more columns."""
    by_concept = _by_concept(records)
    also = _by_concept(second or [])
    threads = next((r["environment"]["torch_threads"] for r in second or []
                    if "environment" in r), None)
    extra = f" {threads} threads: float32 | float64 |" if second else ""
    lines = [_environment(records)] + (["", _environment(second)] if second else []) + [
             "",
             "| concept | size | NumPy / torch, float32: median (min) | float64 |" + extra
             + " float32 ms: NumPy, torch twin, built-in (median) | peak MiB float32: NumPy, "
             "torch twin, built-in |",
             "|---|---|---|---|" + ("---|---|" if second else "") + "---|---|"]
    for concept, dtypes in by_concept.items():
        f32, f64 = dtypes.get("float32"), dtypes.get("float64")
        shown = f32 or f64
        ms = ", ".join(f"{side} {value:.3g}" for side, value in shown["median_ms"].items())
        peak = ", ".join(f"{side} {'-' if b is None else f'{b / 2**20:.1f}'}"
                         for side, b in shown["peak_bytes"].items()) or "-"
        versus = f" vs {shown['numpy_over']}" if shown["numpy_over"] else ""
        size = shown["size"] + (" **[default]**" if shown["default"] else "")
        more = (f" {_ratio(also.get(concept, {}).get('float32'))} | "
                f"{_ratio(also.get(concept, {}).get('float64'))} |" if second else "")
        lines.append(f"| `{concept}` | {size} | {_ratio(f32, True)}{versus} | {_ratio(f64, True)} "
                     f"|{more} {ms} | {peak} |")
    lines.append("")
    for source in (records, second or []):
        counts = [r["environment"]["torch_threads"] for r in source if "environment" in r]
        lines += [f"- {counts[0]} thread(s): {r['line']}" for r in source if "geomean" in r]
    return "\n".join(lines)


def compact(records: list[dict]) -> str:
    """One line: each concept's median ratios float32 / float64, then the geomeans."""
    ratios: dict[str, dict[str, str]] = {}
    for row in records:
        if "concept" in row and row["ratio_median"] is not None:
            ratios.setdefault(row["concept"], {})[row["dtype"]] = _ratio(row)
    env = next(r["environment"] for r in records if "environment" in r)
    parts = [f"{c} {d.get('float32', 'n/a')} / {d.get('float64', 'n/a')}"
             for c, d in ratios.items()]
    means = "; ".join(r["line"] for r in records if "geomean" in r)
    return (f"{env['torch_threads']} torch thread(s), {env['blas_threads']} BLAS thread(s), "
            f"clock {env['clock']}, {env['date']}: " + ", ".join(parts) + f". {means}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("concepts", nargs="*", help="default: every concept")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--from", dest="source", type=Path,
                        help="render the JSON lines of an earlier `dualgrad bench --json`")
    parser.add_argument("--with", dest="second", type=Path,
                        help="a second run's JSON lines (e.g. 2 threads): its ratios as columns")
    parser.add_argument("--json-out", type=Path, help="also keep the raw JSON lines here")
    parser.add_argument("--plot", type=Path, help="the ratio bar chart (log scale)")
    parser.add_argument("--compact", action="store_true",
                        help="one line of ratios (float32 / float64) instead of the table")
    args = parser.parse_args(argv)
    if args.source:
        records = [json.loads(line) for line in args.source.read_text().splitlines()
                   if line.strip()]
    else:
        records = run_bench(args.concepts, args.threads, args.clock, args.repeat, args.plot)
    if args.json_out:
        args.json_out.write_text("".join(json.dumps(r) + "\n" for r in records))
    second = None if args.second is None else [
        json.loads(line) for line in args.second.read_text().splitlines() if line.strip()]
    print(compact(records) if args.compact else markdown(records, second))
    return 0


if __name__ == "__main__":
    sys.exit(main())
