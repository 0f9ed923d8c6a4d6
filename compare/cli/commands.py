"""The ``dualgrad`` command line (also ``python -m compare``).

    dualgrad list                      concepts by family, one line each
    dualgrad run CONCEPT ... | --all   compare the twins; exit 0 agree, 1 mismatch, 2 bad usage
    dualgrad show CONCEPT              the NumPy and the PyTorch code side by side
    dualgrad verify CONCEPT FILE.py:NAME   check your own implementation; exit 0 / 1 / 2
    dualgrad verify FILE.py            check every CS231n pair and known class in a file
    dualgrad exercise CONCEPT          write a skeleton to fill in, ready for verify
    dualgrad bench [CONCEPT ...]       NumPy twin vs torch twin vs built-in, benchmark sizes
    dualgrad report DIR [CONCEPT ...]  a static HTML report: code side by side, tables, plots

Bad usage ends in one line on stderr naming what was wrong, and exit code 2. ``--all``,
``--dtype``, ``--seed`` and ``--json`` mean the same on every subcommand that takes concepts;
verdicts are coloured on a terminal (not when piped, not under NO_COLOR), and long work draws a
progress bar on stderr when stderr is a terminal.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

from compare import registry
from compare.cli import term
from compare.cli.script import MAX_SEED, ScriptError, guarded, seed_value
from compare.tolerances import DTYPES

EXIT_AGREE, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


class UsageError(ScriptError):
    """Bad usage or bad input: printed as one line, exit code 2."""


DEVICES = ("cpu", "cuda")


def device_value(text: str) -> str:
    """``--device``: cpu, cuda or cuda:N (the comparisons need float64, which meta and mps
    lack); checked before torch is imported."""
    kind, _, index = text.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise argparse.ArgumentTypeError(
            f"invalid device {text!r}: expected cpu, cuda or cuda:N")
    return text


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("dualgrad")
    except PackageNotFoundError:
        return "unknown (dualgrad is not installed; running from a source tree)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UsageError(f"{message} (see '{self.prog} --help')")


__all__ = ["EXIT_AGREE", "EXIT_MISMATCH", "EXIT_USAGE", "MAX_SEED", "UsageError", "main",
           "seed_value"]


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dualgrad", description="Every neural-network concept written twice "
                     "(NumPy by hand, PyTorch with autograd) and compared tensor by tensor.")
    parser.add_argument("--version", action="version", version=f"dualgrad {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    listing = commands.add_parser("list", help="concepts by family, one line each")
    listing.add_argument("--json", action="store_true", help="one JSON object per concept")

    run = commands.add_parser("run", help="compare the twins of one or more concepts")
    run.add_argument("concepts", nargs="*", metavar="CONCEPT", help="e.g. layernorm, layers/mlp")
    run.add_argument("--all", action="store_true", help="run every concept")
    run.add_argument("--dtype", choices=[*DTYPES, "both"], default="both",
                     help="float64 (exactness), float32 (realism, refereed by float64) or both "
                          "(default)")
    run.add_argument("--seed", type=seed_value, default=0,
                     help="seed of the inputs and weights, 0 to 2**32-1 (0)")
    run.add_argument("--plots", metavar="DIR", type=Path, help="write a PNG per concept to DIR")
    run.add_argument("--json", action="store_true",
                     help="one JSON object per concept on stdout instead of tables")
    run.add_argument("--device", type=device_value, default="cpu",
                     help="where the torch twins run: cpu (default), cuda or cuda:N")
    run.add_argument("--failures-only", action="store_true",
                     help="print only the failing rows of each table (and the verdicts)")

    verify = commands.add_parser(
        "verify", help="check your own implementation against both references",
        description="Run your implementation on every case of CONCEPT and compare every "
                    "tensor with the NumPy twin, the torch twin and (NumPy) finite "
                    "differences; or, given only FILE.py, find every CS231n-style "
                    "forward/backward pair and every class named after a concept's class in "
                    "it and check each. A case your code cannot express is skipped, not "
                    "failed. Exit 0 when every case that ran agrees (and one ran), 1 on a "
                    "mismatch, 2 when nothing could run or the file or name cannot be loaded.")
    verify.add_argument("targets", nargs="+", metavar="[CONCEPT] FILE.py[:NAME]",
                        help="CONCEPT FILE.py:NAME (a class, NumPy Module or torch.nn.Module, "
                             "or FORWARD,BACKWARD; pkg.module:NAME works too), or FILE.py "
                             "alone; CONCEPT is e.g. layernorm, or activations:GELU")
    verify.add_argument("--dtype", choices=list(DTYPES), default="float64")
    verify.add_argument("--seed", type=seed_value, default=0)
    verify.add_argument("--json", action="store_true", help="one JSON object instead of a table"
                        " (your code's own print() output goes to stderr)")
    verify.add_argument("--plots", metavar="DIR", type=Path, help="write the report's PNG to DIR")
    verify.add_argument("--details", action="store_true",
                        help="with FILE.py alone: the full table of every pair, not one row")
    verify.add_argument("--failures-only", action="store_true",
                        help="print only the failing rows of the table (and the verdict)")
    verify.add_argument("--convention", action="append", default=[], metavar="NAME",
                        help="a convention your code follows, checked exactly under it: "
                             "biased-running-var, drop-probability, bessel-variance "
                             "(repeatable)")

    exercise = commands.add_parser(
        "exercise", help="write a skeleton file for your own implementation of a concept")
    exercise.add_argument("concept", metavar="CONCEPT", help="e.g. layernorm, activations:GELU")
    exercise.add_argument("--out", metavar="FILE", type=Path,
                          help="where to write it (default: my_<concept>.py; - for stdout)")

    report = commands.add_parser(
        "report", help="write a static HTML site: code aligned by role, tables, plots",
        description="Run the concepts (default: all) and write DIR/index.html with one page "
                    "per concept (works offline from file://). DIR must be new, empty, or "
                    "made by an earlier 'dualgrad report'. Exit 0 when all agree, 1 on a "
                    "mismatch.")
    report.add_argument("directory", metavar="DIR")
    report.add_argument("concepts", nargs="*", metavar="CONCEPT", help="default: every concept")
    report.add_argument("--seed", type=seed_value, default=0)
    report.add_argument("--jobs", "-j", type=int, default=0,
                        help="concepts built in parallel processes (default 0: one per CPU)")
    report.add_argument("--bench", metavar="FILE", type=Path,
                        help="'dualgrad bench --json' output: adds the NumPy/torch time ratio "
                             "to the index")

    bench = commands.add_parser(
        "bench", help="NumPy twin vs torch twin vs torch built-in, at benchmark size",
        description="Time every concept at its declared benchmark size (Concept.bench): the "
                    "NumPy twin, the torch twin and the torch built-in, min and median over "
                    "interleaved repeats after a warm-up, their ratio, peak memory, and the "
                    "threads in force. A benchmark to read, never a test to pass.")
    bench.add_argument("concepts", nargs="*", metavar="CONCEPT", help="default: every concept")
    bench.add_argument("--all", action="store_true", help="every concept (the default)")
    bench.add_argument("--dtype", choices=[*DTYPES, "both"], default="both")
    bench.add_argument("--repeat", type=int, default=10,
                       help="interleaved timed rounds per concept and dtype (10)")
    bench.add_argument("--threads", type=int, default=1,
                       help="torch threads and NumPy's BLAS threads (1)")
    bench.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                       help="wall clock (default) or this process's CPU time")
    bench.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    bench.add_argument("--json", action="store_true",
                       help="JSON lines: the environment, then one object per concept and dtype")
    bench.add_argument("--plot", metavar="FILE", type=Path,
                       help="write a bar chart of the ratios (log scale) to FILE")

    show = commands.add_parser(
        "show", help="the NumPy and the PyTorch code side by side, aligned by role",
        description="__init__ beside __init__, forward beside forward, the NumPy backward "
                    "beside autograd, helpers after. Coloured on a terminal; plain when piped "
                    "or when NO_COLOR is set.")
    show.add_argument("concept", metavar="CONCEPT")
    show.add_argument("--width", type=int, help="total width in columns (default: the "
                      f"terminal's; clamped to {SHOW_WIDTH[0]}..{SHOW_WIDTH[1]})")
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
    """The syntax was checked by ``device_value``; here: is that device present."""
    if device == "cpu":
        return
    import torch
    if not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} "
                         "CUDA device(s)")


def catalogue() -> list[dict[str, str]]:
    """Every concept's name, family, summary and witness, read from the source of its compare
    file without importing it (importing a concept imports torch: seconds instead of
    milliseconds). A file whose ``CONCEPT`` fields are not plain literals is imported."""
    import ast

    rows = []
    for family in registry.FAMILIES:
        folder = registry._ROOT / family
        for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
            if path.name.startswith("_"):
                continue
            fields = None
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and any(
                        getattr(t, "id", None) == "CONCEPT" for t in node.targets):
                    keywords = {k.arg: k.value for k in node.value.keywords}
                    try:
                        fields = {k: ast.literal_eval(keywords[k])
                                  for k in ("name", "family", "summary")}
                        fields["witness"] = ast.literal_eval(keywords["witness"]) \
                            if "witness" in keywords else ""
                    except (KeyError, ValueError):
                        fields = None
            if fields is None:  # not literal: ask the concept itself
                concept = registry.get(path.stem)
                fields = {"name": concept.name, "family": concept.family,
                          "summary": concept.summary, "witness": concept.witness}
            rows.append(fields)
    return rows


def source_files(name: str) -> tuple[Path, Path]:
    """A concept's NumPy and torch files, found without importing any concept (``show`` needs
    no torch); an unknown name is a ``UsageError`` suggesting the closest names."""
    import difflib
    rows = {row["name"]: row for row in catalogue()}
    key = name.split("/")[-1]
    row = rows.get(key)
    if row is None or ("/" in name and f"{row['family']}/{key}" != name):
        close = difflib.get_close_matches(key, list(rows), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else \
            "; 'dualgrad list' shows every concept"
        raise UsageError(f"unknown concept {name!r}{hint}")
    root = registry._ROOT.parent
    return (root / "numpy_impl" / row["family"] / f"{key}.py",
            root / "torch_impl" / row["family"] / f"{key}.py")


def cmd_list(args: argparse.Namespace) -> int:
    if args.json:  # the JSON rows carry case names, which only the concepts themselves know
        for c in registry.concepts().values():
            print(json.dumps({"concept": c.name, "family": c.family, "summary": c.summary,
                              "compares": c.compares, "witness": c.witness,
                              "cases": [case.name for case in c.cases]}))
        return EXIT_AGREE
    rows = catalogue()
    width = max((len(c["name"]) for c in rows), default=0)
    family = None
    for c in rows:
        if c["family"] != family:
            family = c["family"]
            print(f"{family}:")
        print(f"  {c['name']:<{width}}  {c['summary']}  [witness: {c['witness'] or 'none'}]")
    return EXIT_AGREE


def _one_torch_thread() -> None:
    """The comparisons use small tensors, where thread start-up costs more than it saves
    (20 ms per call measured on 2 busy cores vs < 1 ms on one thread)."""
    import torch
    torch.set_num_threads(1)


def _select(args: argparse.Namespace, default_all: bool = False) -> list:
    """The concepts a subcommand was given: names, or --all (or every one by default)."""
    if getattr(args, "all", False) and args.concepts:
        raise UsageError("name concepts or use --all, not both")
    if not args.concepts and not getattr(args, "all", False) and not default_all:
        raise UsageError("name at least one concept (see 'dualgrad list'), or use --all")
    if not args.concepts:
        return list(registry.concepts().values())
    return list({c.name: c for c in map(_concept, args.concepts)}.values())


def cmd_run(args: argparse.Namespace) -> int:
    from compare.runner import run_concept
    selected = _select(args)
    if args.plots is not None:
        _check_plots_dir(args.plots)
    _check_device(args.device)
    _one_torch_thread()
    dtypes = list(DTYPES) if args.dtype == "both" else [args.dtype]

    several = len(selected) > 1
    all_agree = True
    with term.Progress(len(selected)) as bar:
        for concept in selected:
            bar.update(concept.name)
            report = run_concept(concept, dtypes=dtypes, seed=args.seed, device=args.device)
            bar.clear()
            all_agree &= report.passed
            written = []
            if args.plots is not None:
                written.append(report.plot(args.plots / f"{concept.name}.png"))
                if concept.extra_plots is not None:
                    written.extend(concept.extra_plots(args.plots, args.seed))
            if args.json:
                print(json.dumps(report.to_dict()), flush=True)
            else:
                table = report.table(failures_only=args.failures_only)
                print(term.highlight(table) + "\n", flush=True)
            if several and not bar.enabled:  # a log line per concept where no bar is drawn
                print(f"[{bar.done + 1}/{len(selected)}] {concept.qualified_name}: "
                      f"{report.verdict} ({len(report.diffs)} tensors, {report.seconds:.2f} s)",
                      file=sys.stderr, flush=True)
            for path in written:
                print(f"wrote {path}", file=sys.stderr)
            bar.advance(concept.name)
    if several and not args.json:
        agreeing = "all agree" if all_agree else "not all agree"
        print(term.paint(f"{len(selected)} concepts run; {agreeing}",
                         "green" if all_agree else "red"))
    return EXIT_AGREE if all_agree else EXIT_MISMATCH


def cmd_verify(args: argparse.Namespace) -> int:
    import contextlib

    from compare.verify import VerifyError, load, verify, verify_file
    from compare.verify.adapters.cs231n import CONVENTIONS
    _one_torch_thread()
    if len(args.targets) > 2:
        raise UsageError("verify takes CONCEPT FILE.py:NAME or FILE.py, got "
                         f"{len(args.targets)} arguments")
    for convention in args.convention:
        if convention not in CONVENTIONS:
            raise UsageError(f"unknown convention {convention!r}; known: "
                             + ", ".join(CONVENTIONS))
    if len(args.targets) == 2:  # validated before the user's file is imported
        _concept(args.targets[0].partition(":")[0])
    if args.plots is not None:
        _check_plots_dir(args.plots)
    # the user's print() must not corrupt --json on stdout
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        with quiet:
            if len(args.targets) == 1:
                found = verify_file(args.targets[0].partition(":")[0] if args.targets[0]
                                    .endswith(".py") else args.targets[0], dtype=args.dtype,
                                    seed=args.seed, conventions=args.convention)
            else:
                impl = load(args.targets[1])
                found = [(args.targets[1], verify(args.targets[0], impl, dtype=args.dtype,
                                                  seed=args.seed,
                                                  conventions=args.convention))]
    except VerifyError as error:
        raise UsageError(str(error)) from None
    if not found:
        raise UsageError(f"{args.targets[0]} defines no CS231n-style pair (affine_forward, "
                         "...) and no class named after a concept's class; name one: "
                         "dualgrad verify CONCEPT FILE.py:NAME")
    single = len(args.targets) == 2
    for label, report in found:
        if args.json:
            print(json.dumps({"checked": label, **report.to_dict()}))
        elif single or args.details:
            print(report.table(failures_only=args.failures_only)
                  + ("\n" if not single else ""))
        else:
            print(report.summary_row(label))
    if not args.json and not single:
        counts = [r.exit_code for _, r in found]
        skipped = sum(len(r.skipped) for _, r in found)
        print(f"{len(found)} checked: {counts.count(0)} agree, {counts.count(1)} do not, "
              f"{counts.count(2)} could not run; {skipped} case(s) skipped")
    if args.plots is not None:
        for _, report in found:
            if report.diffs:
                path = report.plot(args.plots / f"verify_{report.concept}.png")
                print(f"wrote {path}", file=sys.stderr)
    codes = [report.exit_code for _, report in found]
    if EXIT_MISMATCH in codes:
        return EXIT_MISMATCH
    return EXIT_USAGE if all(code == EXIT_USAGE for code in codes) else EXIT_AGREE


def cmd_exercise(args: argparse.Namespace) -> int:
    from compare.verify import VerifyError
    from compare.verify.exercise import skeleton
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
    from compare.site import build as site
    if not args.directory.strip():
        raise UsageError("DIR is empty; name the directory to write the site into")
    if args.jobs < 0:
        raise UsageError(f"--jobs {args.jobs}: expected 0 (one per CPU) or more")
    selected = list({c.name: c for c in map(_concept, args.concepts)}.values()) or \
        list(registry.concepts().values())
    jobs = min(args.jobs or site.cpu_count(), len(selected))
    _one_torch_thread()
    try:
        bench = site.read_bench(args.bench) if args.bench is not None else None
        entries = site.build_site(Path(args.directory), selected, seed=args.seed, jobs=jobs,
                                  bench=bench, progress=site.stderr_progress)
    except site.SiteError as error:
        raise UsageError(str(error)) from None
    except OSError as error:  # the folder became unwritable while building
        raise UsageError(f"cannot write to '{args.directory}': "
                         f"{error.strerror or error}") from None
    print(f"wrote {Path(args.directory) / 'index.html'}")
    return EXIT_AGREE if all(e["passed"] for e in entries) else EXIT_MISMATCH


def cmd_bench(args: argparse.Namespace) -> int:
    from compare.cli import bench
    if args.repeat < 1 or args.threads < 1:
        raise UsageError("--repeat and --threads must be at least 1")
    bench.set_threads(args.threads)
    selected = _select(args, default_all=True)
    dtypes = list(DTYPES) if args.dtype == "both" else [args.dtype]
    env = bench.environment(args.threads, args.clock)
    print(json.dumps({"environment": env}) if args.json else bench.header(env), flush=True)
    timings = []
    bar = term.Progress(len(selected) * len(dtypes))
    for concept in selected:
        for dtype in dtypes:
            bar.update(f"{concept.name} {dtype}")
            timing = bench.bench(concept, dtype, args.repeat, args.clock, not args.no_memory)
            bar.advance(concept.name)
            bar.clear()
            timings.append(timing)
            print(json.dumps(timing.to_dict()) if args.json else bench.table_row(timing),
                  flush=True)
    for dtype in dtypes:
        line = bench.geomean_line(timings, dtype)
        print(json.dumps({"geomean": dtype, "line": line,
                          "value": bench.geomean([t.ratio() for t in timings
                                                  if t.dtype == dtype])})
              if args.json else line)
    if args.plot:
        path = bench.plot(timings, args.plot)
        print(json.dumps({"plot": str(path)}) if args.json else f"wrote {path}",
              file=sys.stderr if args.json else sys.stdout)
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


SHOW_WIDTH = (60, 400)  # narrower is unreadable in two columns; wider only prints padding


def cmd_show(args: argparse.Namespace) -> int:
    from compare.site.align import align_files, render_terminal
    numpy_path, torch_path = source_files(args.concept)  # no concept imported: no torch
    width = args.width or shutil.get_terminal_size(fallback=(160, 40)).columns
    width = min(max(width, SHOW_WIDTH[0]), SHOW_WIDTH[1])
    root = numpy_path.parent.parent.parent
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    rows = align_files(numpy_path, torch_path)
    print(render_terminal(rows, (numpy_path.relative_to(root).as_posix(),
                                 torch_path.relative_to(root).as_posix()),
                          width, colour))
    return EXIT_AGREE


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; every bad ending is one line on stderr and an exit code
    (``compare.cli.script.guarded``: 2 bad usage, 130 Ctrl-C, 1 unwritable output)."""
    def body() -> int:
        parser = _parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        commands = {"list": cmd_list, "run": cmd_run, "show": cmd_show, "verify": cmd_verify,
                    "exercise": cmd_exercise, "bench": cmd_bench, "report": cmd_report}
        return commands[args.command](args)
    return guarded("dualgrad", body)


def run_as_script(name: str) -> None:
    """``python -m compare.<family>.<concept> [run options]``: ``dualgrad run <concept>``."""
    raise SystemExit(main(["run", name, *sys.argv[1:]]))
