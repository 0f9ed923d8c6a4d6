"""Every example in README.md runs as written, in a scratch directory, in order.

- A ```python block whose first line is ``# NAME.py`` is a file the reader saves: it is
  written first (commands before it in the README may use it), then run like the others.
  A ``# test_*.py`` file is run with pytest (the plugin provides the fixture).
- Every other ```python block runs as a script; it must exit 0.
- A ```bash line runs as written (``dualgrad`` is this checkout's command line), except the
  install and test-suite commands (CI runs those: .ci/run) and the training demos, which
  train for minutes: those run with ``--help`` appended, which checks that every option they
  show exists. Exit 0 or 1 (a mismatch is an example's point) -- never 2, never a traceback.
- A ```console block's ``$ command`` runs too; its first output line must be the README's,
  and the README's last line (the summary) must appear in the output.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
BLOCKS = [(m.group(1), m.group(2), README.count("\n", 0, m.start()) + 1)
          for m in BLOCK.finditer(README)]
SKIPPED = ("pip install", "python -m pytest")  # run by .ci/run, not from inside the suite
LONG = ("python -m compare.vision.cnn --train", "python -m compare.language.mlp_lm",
        "python -m compare.language.bigram")


def _saved_name(text: str) -> str | None:
    first = text.splitlines()[0] if text.strip() else ""
    match = re.fullmatch(r"# (\w+\.py)", first.strip())
    return match.group(1) if match else None


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """The reader's directory: the README's files saved, the student files the README verifies
    (at their path in a checkout), ``dualgrad`` on PATH."""
    folder = tmp_path_factory.mktemp("readme")
    for language, text, _ in BLOCKS:
        name = _saved_name(text) if language == "python" else None
        if name:
            (folder / name).write_text(text)
    shutil.copytree(ROOT / "tests" / "student_code", folder / "tests" / "student_code")
    (folder / "words.txt").write_text("\n".join(
        ["anna", "bob", "carla", "dora", "emil", "fritz", "gustav", "hanna", "ida", "jonas"]))
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "dualgrad"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m compare "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1",
           "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
                   f"{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg"}
    return folder, env


def _run(command: str | list[str], scratch) -> subprocess.CompletedProcess:
    folder, env = scratch
    return subprocess.run(command, shell=isinstance(command, str), cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


def _commands(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()  # a trailing comment explains
        if command and not command.startswith("#"):
            lines.append(command)
    return lines


BASH = [(command, line) for language, text, line in BLOCKS if language == "bash"
        for command in _commands(text)]
PYTHON = [(text, line) for language, text, line in BLOCKS if language == "python"]
CONSOLE = [(text, line) for language, text, line in BLOCKS if language == "console"]


def test_the_readme_has_examples_of_every_kind():
    assert len(BASH) >= 5 and len(PYTHON) >= 4 and len(CONSOLE) >= 2


@pytest.mark.parametrize("command, line", BASH, ids=[f"L{n}:{c[:40]}" for c, n in BASH])
def test_bash_example_runs(scratch, command, line):
    if any(skip in command for skip in SKIPPED):
        pytest.skip(".ci/run runs the install and the test suite")
    if command.startswith(LONG):
        command += " --help"  # training for minutes: check the options shown exist
    result = _run(command, scratch)
    assert result.returncode in (0, 1), f"README line {line}: {command}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("text, line", PYTHON, ids=[f"L{n}" for _, n in PYTHON])
def test_python_example_runs(scratch, text, line):
    folder, _ = scratch
    name = _saved_name(text)
    if name and name.startswith("test_"):
        result = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
                      scratch)
    else:
        path = folder / (name or f"readme_line_{line}.py")
        path.write_text(text)
        result = _run([sys.executable, path.name], scratch)
    assert result.returncode == 0, f"README line {line}\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("text, line", CONSOLE, ids=[f"L{n}" for _, n in CONSOLE])
def test_console_example_runs_and_prints_what_the_readme_shows(scratch, text, line):
    lines = text.rstrip("\n").splitlines()
    assert lines[0].startswith("$ ")
    command, shown = lines[0][2:], lines[1:]
    result = _run(command, scratch)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    output = result.stdout.splitlines()
    assert output[0] == shown[0], f"README line {line + 1}"
    assert shown[-1] in output, f"README line {line + len(lines)}: {shown[-1]!r} not printed"
