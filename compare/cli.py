"""The ``dualgrad`` command line (also ``python -m compare``).

    dualgrad list                      concepts by family, one line each
    dualgrad run CONCEPT ... | --all   compare the twins; exit 0 agree, 1 mismatch, 2 bad usage
    dualgrad show CONCEPT              the NumPy and the PyTorch code side by side
    dualgrad verify CONCEPT FILE.py:NAME   check your own implementation; exit 0 / 1 / 2
    dualgrad exercise CONCEPT          write a skeleton to fill in, ready for verify
    dualgrad bench [CONCEPT ...]       NumPy-vs-torch speed per concept
    dualgrad report DIR [CONCEPT ...]  a static HTML report: code side by side, tables, plots

Bad usage ends in one line on stderr naming what was wrong, and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

from compare import registry
from compare.tolerances import DTYPES

EXIT_AGREE, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage or bad input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dualgrad", description="Every neural-network concept written twice "
                     "(NumPy by hand, PyTorch with autograd) and compared tensor by tensor.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    listing = commands.add_parser("list", help="concepts by family, one line each")
    listing.add_argument("--json", action="store_true", help="one JSON object per concept")

    run = commands.add_parser("run", help="compare the twins of one or more concepts")
    run.add_argument("concepts", nargs="*", metavar="CONCEPT", help="e.g. layernorm, layers/mlp")
    run.add_argument("--all", action="store_true", help="run every concept")
    run.add_argument("--dtype", choices=[*DTYPES, "both"], default="both",
                     help="float64 (exactness), float32 (realism, refereed by float64) or both "
                          "(default)")
    run.add_argument("--seed", type=int, default=0, help="seed of the inputs and weights (0)")
    run.add_argument("--plots", metavar="DIR", type=Path, help="write a PNG per concept to DIR")
    run.add_argument("--json", action="store_true",
                     help="one JSON object per concept on stdout instead of tables")
    run.add_argument("--device", default="cpu",
                     help="where the torch twins run: cpu (default) or cuda")

    verify = commands.add_parser(
        "verify", help="check your own implementation against both references",
        description="Run your implementation on every case of CONCEPT and compare every "
                    "tensor with the NumPy twin, the torch twin and (NumPy) finite "
                    "differences. Exit 0 when it matches, 1 when it does not, 2 when the "
                    "file or name cannot be loaded.")
    verify.add_argument("concept", metavar="CONCEPT",
                        help="e.g. layernorm, or activations:GELU for one class of a concept")
    verify.add_argument("impl", metavar="FILE.py:NAME",
                        help="a class (NumPy Module or torch.nn.Module), or FORWARD,BACKWARD")
    verify.add_argument("--dtype", choices=list(DTYPES), default="float64")
    verify.add_argument("--seed", type=int, default=0)
    verify.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    verify.add_argument("--plots", metavar="DIR", type=Path, help="write the report's PNG to DIR")

    exercise = commands.add_parser(
        "exercise", help="write a skeleton file for your own implementation of a concept")
    exercise.add_argument("concept", metavar="CONCEPT", help="e.g. layernorm, activations:GELU")
    exercise.add_argument("--out", metavar="FILE", type=Path,
                          help="where to write it (default: my_<concept>.py; - for stdout)")

    report = commands.add_parser(
        "report", help="write a static HTML report: code side by side, tables, plots",
        description="Run the concepts (default: all) and write DIR/index.html with one page "
                    "per concept. Exit 0 when all agree, 1 on a mismatch.")
    report.add_argument("directory", metavar="DIR", type=Path)
    report.add_argument("concepts", nargs="*", metavar="CONCEPT", help="default: every concept")
    report.add_argument("--seed", type=int, default=0)

    bench = commands.add_parser(
        "bench", help="NumPy-vs-torch speed of one forward and backward, per concept",
        description="Median forward+backward time of each twin, summed over a concept's "
                    "cases. Concepts with their own runner have scripts under benchmarks/.")
    bench.add_argument("concepts", nargs="*", metavar="CONCEPT", help="default: every concept")
    bench.add_argument("--dtype", choices=list(DTYPES), default="float64")
    bench.add_argument("--repeat", type=int, default=20, help="timed runs per case (20)")
    bench.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    bench.add_argument("--json", action="store_true", help="one JSON object per concept")

    show = commands.add_parser("show", help="the NumPy and the PyTorch code side by side")
    show.add_argument("concept", metavar="CONCEPT")
    show.add_argument("--width", type=int, help="total width in columns (default: the terminal's)")
    return parser


def _concept(name: str):
    try:
        return registry.get(name)
    except registry.UnknownConcept as error:
        raise UsageError(str(error)) from None


def _check_plots_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise UsageError(f"cannot write plots to '{directory}': {reason}") from None


def _check_device(device: str) -> None:
    import torch
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device {device!r} is not a torch device; expected cpu or cuda") \
            from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available on this machine")


def cmd_list(args: argparse.Namespace) -> int:
    concepts = registry.concepts().values()
    if args.json:
        for c in concepts:
            print(json.dumps({"concept": c.name, "family": c.family, "summary": c.summary,
                              "compares": c.compares, "witness": c.witness,
                              "cases": [case.name for case in c.cases]}))
        return EXIT_AGREE
    width = max((len(c.name) for c in concepts), default=0)
    family = None
    for c in concepts:
        if c.family != family:
            family = c.family
            print(f"{family}:")
        print(f"  {c.name:<{width}}  {c.summary}  [{len(c.cases)} cases; "
              f"witness: {c.witness or 'none'}]")
    return EXIT_AGREE


def _one_torch_thread() -> None:
    """The comparisons use small tensors, where thread start-up costs more than it saves
    (20 ms per call measured on 2 busy cores vs < 1 ms on one thread)."""
    import torch
    torch.set_num_threads(1)


def cmd_run(args: argparse.Namespace) -> int:
    from compare.runner import run_concept
    _one_torch_thread()
    if args.all and args.concepts:
        raise UsageError("name concepts or use --all, not both")
    if not args.all and not args.concepts:
        raise UsageError("name at least one concept (see 'dualgrad list'), or use --all")
    selected = list(registry.concepts().values()) if args.all else \
        list({c.name: c for c in map(_concept, args.concepts)}.values())
    if args.plots is not None:
        _check_plots_dir(args.plots)
    _check_device(args.device)
    dtypes = list(DTYPES) if args.dtype == "both" else [args.dtype]

    progress = args.all or len(selected) > 1
    all_agree = True
    for i, concept in enumerate(selected, start=1):
        report = run_concept(concept, dtypes=dtypes, seed=args.seed, device=args.device)
        all_agree &= report.passed
        written = []
        if args.plots is not None:
            written.append(report.plot(args.plots / f"{concept.name}.png"))
            if concept.extra_plots is not None:
                written.extend(concept.extra_plots(args.plots, args.seed))
        if args.json:
            print(json.dumps(report.to_dict()), flush=True)
        else:
            print(report.table() + "\n", flush=True)
        if progress:
            print(f"[{i}/{len(selected)}] {concept.qualified_name}: {report.verdict} "
                  f"({len(report.diffs)} tensors, {report.seconds:.2f} s)",
                  file=sys.stderr, flush=True)
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    if progress and not args.json:
        agreeing = "all" if all_agree else "not all"
        print(f"{len(selected)} concepts run; {agreeing} agree")
    return EXIT_AGREE if all_agree else EXIT_MISMATCH


def cmd_verify(args: argparse.Namespace) -> int:
    from compare.verify import VerifyError, load, verify
    _one_torch_thread()
    if args.plots is not None:
        _check_plots_dir(args.plots)
    try:
        impl = load(args.impl)
        report = verify(args.concept, impl, dtype=args.dtype, seed=args.seed)
    except VerifyError as error:
        raise UsageError(str(error)) from None
    print(json.dumps(report.to_dict()) if args.json else report.table())
    if args.plots is not None and report.diffs:
        path = report.plot(args.plots / f"verify_{report.concept}.png")
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_AGREE if report.passed else EXIT_MISMATCH


def cmd_exercise(args: argparse.Namespace) -> int:
    from compare.exercise import skeleton
    from compare.verify import VerifyError
    try:
        text, class_name = skeleton(args.concept)
    except VerifyError as error:
        raise UsageError(str(error)) from None
    concept = args.concept.partition(":")[0]
    out = args.out or Path(f"my_{concept.replace('/', '_')}.py")
    if str(out) == "-":
        print(text, end="")
        return EXIT_AGREE
    if out.exists():
        raise UsageError(f"{out} exists; choose another --out (nothing was overwritten)")
    try:
        out.write_text(text)
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror or error}") from None
    print(f"wrote {out}: fill in forward and backward, then run\n"
          f"  dualgrad verify {args.concept} {out}:{class_name}")
    return EXIT_AGREE


def cmd_report(args: argparse.Namespace) -> int:
    from compare.html import concept_page, index_page
    from compare.runner import run_concept
    _one_torch_thread()
    selected = [_concept(n) for n in args.concepts] or list(registry.concepts().values())
    _check_plots_dir(args.directory)
    rows = []
    for i, concept in enumerate(selected, start=1):
        report = run_concept(concept, seed=args.seed)
        figures = [report.plot(args.directory / f"{concept.name}.png")]
        if concept.extra_plots is not None:
            figures += concept.extra_plots(args.directory, args.seed)
        (args.directory / f"{concept.name}.html").write_text(
            concept_page(concept, report, figures), encoding="utf-8")
        rows.append((concept, report))
        print(f"[{i}/{len(selected)}] {concept.qualified_name}: {report.verdict}",
              file=sys.stderr, flush=True)
    index = args.directory / "index.html"
    index.write_text(index_page(rows), encoding="utf-8")
    print(f"wrote {index}")
    return EXIT_AGREE if all(r.passed for _, r in rows) else EXIT_MISMATCH


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from compare.bench import bench
    if args.repeat < 1 or args.threads < 1:
        raise UsageError("--repeat and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    selected = [_concept(n) for n in args.concepts] or list(registry.concepts().values())
    if not args.json:
        print(f"{'concept':<22} {'cases':>5} {'numpy ms':>10} {'torch ms':>10} "
              f"{'numpy/torch':>12}   ({args.dtype}, forward+backward, median of "
              f"{args.repeat}, torch threads {args.threads})")
    for concept in selected:
        timing = bench(concept, args.dtype, args.repeat)
        if args.json:
            print(json.dumps(timing.to_dict() if timing else
                             {"concept": concept.name, "skipped": "has its own runner"}))
        elif timing is None:
            print(f"{concept.name:<22} {'-':>5}   has its own runner: see benchmarks/")
        else:
            print(f"{timing.concept:<22} {timing.cases:>5} {timing.numpy_ms:>10.3f} "
                  f"{timing.torch_ms:>10.3f} {timing.ratio:>12.2f}", flush=True)
    return EXIT_AGREE


def side_by_side(left: str, right: str, left_title: str, right_title: str, width: int) -> str:
    """Two texts in columns of equal width, long lines wrapped, line i beside line i."""
    column = max(20, (width - 3) // 2)

    def rows(line: str) -> list[str]:
        line = line.expandtabs(4).rstrip()
        return textwrap.wrap(line, column, subsequent_indent="  ", drop_whitespace=False,
                             replace_whitespace=False) or [""]

    out = [f"{left_title:<{column}} | {right_title}", f"{'-' * column}-+-{'-' * column}"]
    left_lines, right_lines = left.splitlines(), right.splitlines()
    for k in range(max(len(left_lines), len(right_lines))):
        a = rows(left_lines[k]) if k < len(left_lines) else [""]
        b = rows(right_lines[k]) if k < len(right_lines) else [""]
        for j in range(max(len(a), len(b))):
            cell = a[j] if j < len(a) else ""
            out.append(f"{cell:<{column}} | {b[j] if j < len(b) else ''}".rstrip())
    return "\n".join(out)


def cmd_show(args: argparse.Namespace) -> int:
    concept = _concept(args.concept)
    width = args.width or shutil.get_terminal_size(fallback=(160, 40)).columns
    if width < 43:
        raise UsageError(f"--width {width} is too narrow; expected at least 43 columns")
    numpy_path, torch_path = concept.source_path("numpy_impl"), concept.source_path("torch_impl")
    root = numpy_path.parent.parent.parent
    print(side_by_side(numpy_path.read_text(), torch_path.read_text(),
                       str(numpy_path.relative_to(root)), str(torch_path.relative_to(root)), width))
    return EXIT_AGREE


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        commands = {"list": cmd_list, "run": cmd_run, "show": cmd_show, "verify": cmd_verify,
                    "exercise": cmd_exercise, "bench": cmd_bench, "report": cmd_report}
        return commands[args.command](args)
    except UsageError as error:
        print(f"dualgrad: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `dualgrad run --all | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return EXIT_AGREE
    except KeyboardInterrupt:
        print("dualgrad: interrupted", file=sys.stderr)
        return 130


def run_as_script(name: str) -> None:
    """``python -m compare.<family>.<concept> [run options]``: ``dualgrad run <concept>``."""
    raise SystemExit(main(["run", name, *sys.argv[1:]]))
