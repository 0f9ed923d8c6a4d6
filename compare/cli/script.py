"""Plumbing shared by the command lines (``dualgrad`` and the training scripts).

Every way a command can end badly ends in one line on stderr and a proper exit code, never a
traceback:

- bad input (``ScriptError``, argparse errors): ``PROG: error: ...``, exit 2, raised before any
  long work starts (the ``*_value`` argument types and ``writable_dir`` check up front);
- Ctrl-C: ``PROG: interrupted``, exit 130 (128 + SIGINT, as a shell reports it);
- the reader of stdout left (``| head -1``): silent, exit 0 -- nothing went wrong;
- stdout or a file cannot be written (``> /dev/full``, a full disk): ``PROG: error: cannot
  write ...``, exit 1.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class ScriptError(Exception):
    """Bad usage or bad input: printed as one line, exit code 2."""


MAX_SEED = 2**32 - 1  # numpy.random.default_rng and torch.manual_seed both accept this range


def seed_value(text: str) -> int:
    """``--seed``: a whole number in [0, 2**32 - 1]; anything else is a usage error."""
    try:
        seed = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid int value {text!r}: a seed is a whole number from 0 to {MAX_SEED}") \
            from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"invalid seed {text!r}: expected a whole number from 0 to {MAX_SEED}")
    return seed


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``ScriptError``), not usage + message."""

    def error(self, message: str) -> None:
        raise ScriptError(f"{message} (see '{self.prog} --help')")


def positive_int_value(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value {text!r}: expected a whole "
                                         "number >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a whole number >= 1")
    return value


def positive_float_value(text: str) -> float:
    """An argparse type: a finite number > 0 (no nan, no inf: a learning rate, a scale)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a finite number > 0")
    return value


def fraction_value(text: str) -> float:
    """An argparse type: a number in [0, 1] (an accuracy target)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number in [0, 1]")
    return value


def directory_value(text: str) -> Path:
    """An argparse type: a directory path, never the empty string (which would silently mean
    the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path would mean the current directory; "
                                         "name a directory")
    return Path(text)


def writable_dir(directory: Path, option: str = "--out") -> Path:
    """Create ``directory`` if needed and prove a file can be written there, before any long
    run; refuse the empty string (it would mean the current directory by accident)."""
    if str(directory) == "":
        raise ScriptError(f"{option} '': name a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise ScriptError(f"{option} {directory}: cannot write there: "
                          f"{error.strerror or error}") from None
    return directory


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout already closed or not a real file
        pass


def guarded(prog: str, body: Callable[[], int]) -> int:
    """Run ``body`` and turn every bad ending into one line on stderr and an exit code."""
    try:
        code = body()
        sys.stdout.flush()  # a full disk shows up here, inside the guard, not at exit
        return code
    except ScriptError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader left (`| head`): nothing is wrong
        _silence_stdout()
        return 0
    except OSError as error:
        _silence_stdout()
        where = f" {error.filename}" if error.filename else " the output"
        print(f"{prog}: error: cannot write{where}: {error.strerror or error}", file=sys.stderr)
        return 1


def run_options_help() -> str:
    """The options of ``dualgrad run``, for a script's ``--help`` (they are passed through)."""
    from compare.cli.commands import _parser
    parser = _parser()
    run = next(a for a in parser._subparsers._group_actions  # noqa: SLF001 -- argparse API
               if isinstance(a, argparse._SubParsersAction)).choices["run"]
    text = run.format_help()
    options = text[text.index("options:"):].split("\n", 1)[1]
    # -h is the script's own, and --all names other concepts: both left out
    kept, skipping = [], False
    for line in options.splitlines():
        if line.startswith("  -"):
            skipping = line.startswith(("  -h,", "  --all"))
        if not skipping:
            kept.append(line)
    return "comparison options (those of 'dualgrad run'):\n" + "\n".join(kept)


def help_requested(argv: list[str]) -> bool:
    return "-h" in argv or "--help" in argv


def comparison_then_demo(concept: str, demo: Callable[..., Any], option: str, default: int,
                         argv: Sequence[str] | None = None) -> int:
    """``python -m compare.<family>.<concept> [--OPTION N] [run options]``: the comparison,
    then ``demo(OPTION=N, out=...)`` training both twins side by side. Returns the
    comparison's exit code (2, and no demo, for bad usage)."""
    from compare.cli import main
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(f"--{option}", type=int, default=default)
    args, rest = parser.parse_known_args(argv)
    count = getattr(args, option)
    if count < 1:
        print(f"dualgrad: error: --{option} must be a positive number, got {count}",
              file=sys.stderr)
        return 2
    code = main(["run", concept, *rest])
    if code != 2:  # with --json, stdout stays JSON: the demo goes to stderr
        demo_out = sys.stderr if "--json" in rest else sys.stdout
        print(file=demo_out)
        demo(**{option: count}, out=demo_out)
    return code
