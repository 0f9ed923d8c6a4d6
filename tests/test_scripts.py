"""The command lines' bad-input table: every row one line on stderr and a proper exit code,
checked before any long run (the training scripts and ``dualgrad`` itself)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compare.cli import main as cli_main
from compare.data.mnist import FILES, write_idx
from compare.language import bigram, mlp_lm
from compare.vision import cnn

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}


def one_line_error(err: str, prog: str) -> bool:
    return err.count("\n") == 1 and err.startswith(f"{prog}: error: ")


@pytest.fixture
def no_training(monkeypatch):
    """Validation must come first: training would fail the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the bad input was found")
    monkeypatch.setattr(cnn, "train_both", refuse)
    monkeypatch.setattr(mlp_lm, "train_side_by_side", refuse)


CNN = "dualgrad"  # the scripts' errors carry the prefix of the comparison they run


@pytest.mark.parametrize("argv, message", [
    (["--lr", "nan"], "argument --lr: invalid value 'nan'"),
    (["--lr", "inf"], "argument --lr: invalid value 'inf'"),
    (["--lr", "0"], "expected a finite number > 0"),
    (["--epochs", "0"], "argument --epochs"),
    (["--batch-size", "x"], "argument --batch-size: invalid int value 'x'"),
    (["--n-test", "0"], "argument --n-test"),
    (["--target", "1.5"], "argument --target"),
    (["--seed", "-1"], "argument --seed"),
    (["--seed", "1e23"], "argument --seed"),
    (["--out", ""], "argument --out: an empty path would mean the current directory"),
    (["--data", "/nonexistent/mnist"], "no such directory"),
    (["--n-val", "-1"], "--n-val -1"),
])
def test_cnn_train_bad_input_is_one_line(capsys, no_training, argv, message):
    code = cnn.main(["--train", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert one_line_error(err, CNN) and message in err, err


def test_cnn_train_unwritable_out_is_found_before_training(capsys, no_training, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code = cnn.main(["--train", "--out", str(blocker / "figures")])
    _, err = capsys.readouterr()
    assert code == 2 and one_line_error(err, CNN) and f"--out {blocker / 'figures'}" in err


def _idx_dir(tmp_path: Path, train_shape: tuple, test_shape: tuple) -> Path:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for split, shape in (("train", train_shape), ("test", test_shape)):
        images, labels = FILES[split]
        write_idx(folder / images, np.zeros(shape, np.uint8))
        write_idx(folder / labels, np.zeros(shape[:1], np.uint8))
    return folder


@pytest.mark.parametrize("train_shape, test_shape, message", [
    ((8, 32, 32), (4, 32, 32), "training images are 32x32; the CNN takes 28x28 images"),
    ((8, 28, 28), (4, 20, 28), "test images are 20x28"),
    ((8, 28, 28), (0, 28, 28), "no test images"),
])
def test_cnn_train_idx_of_another_size_or_empty(capsys, no_training, tmp_path, train_shape,
                                                test_shape, message):
    folder = _idx_dir(tmp_path, train_shape, test_shape)
    code = cnn.main(["--train", "--data", str(folder), "--n-val", "2",
                     "--out", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert code == 2 and one_line_error(err, CNN) and message in err, err


def test_cnn_train_ctrl_c_is_one_line_and_130(capsys, monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(cnn, "train_both", interrupted)
    code = cnn.main(["--train", "--n-train", "8", "--n-val", "2", "--n-test", "4",
                     "--out", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 130 and err.strip() == "dualgrad: interrupted"


def test_cnn_train_writes_its_figures_where_out_says(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the current directory
    out = tmp_path / "figures"
    code = cnn.main(["--train", "--epochs", "1", "--n-train", "64", "--n-val", "8",
                     "--n-test", "32", "--target", "0", "--out", str(out)])
    stdout, _ = capsys.readouterr()
    assert code == 0
    written = sorted(p.name for p in out.iterdir())
    assert written and all(name.endswith(".png") for name in written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures"]
    assert f"wrote {out / written[0]}" in stdout or str(out) in stdout


def test_cnn_default_out_is_a_named_folder():
    args = cnn.train_options(cnn._train_parser()).parse_args(["--train"])
    assert args.out == Path("cnn_train")


@pytest.mark.parametrize("module, prog, own", [
    (cnn, "python -m compare.vision.cnn",
     ["--train", "--epochs", "--data", "--out", "--lr", "--target"]),
    (mlp_lm, "python -m compare.language.mlp_lm", ["--data", "--steps"]),
    (bigram, "python -m compare.language.bigram", ["--data", "--steps"]),
])
def test_script_help_describes_its_own_options(capsys, module, prog, own):
    entry = module.script if module is mlp_lm else module.main
    assert entry(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {prog}")
    assert all(option in out for option in own)
    assert "comparison options (those of 'dualgrad run'):" in out and "--dtype" in out


@pytest.mark.parametrize("words, message", [
    ("emma\n", "1 word(s)"),
    ("emma\nolivia\n", "2 word(s)"),
])
def test_mlp_lm_tiny_data_is_refused_before_the_run(capsys, no_training, tmp_path, words,
                                                    message):
    path = tmp_path / "words.txt"
    path.write_text(words)
    code = mlp_lm.script(["--data", str(path), "--dtype", "float64"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert one_line_error(err, "dualgrad") and message in err


@pytest.mark.parametrize("entry", [mlp_lm.script, bigram.main])
@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps"),
    (["--steps", "x"], "argument --steps: invalid int value"),
    (["--data", "/nonexistent.txt"], "no such file"),
])
def test_language_scripts_bad_input(capsys, no_training, entry, argv, message):
    code = entry(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and one_line_error(err, "dualgrad") and message in err, err


def _shell(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)


def test_a_closed_pipe_is_silent_and_exit_0():
    result = _shell(f"set -o pipefail; {sys.executable} -m compare.language.bigram "
                    "--dtype float64 --steps 5 | head -1")
    assert result.returncode == 0 and result.stderr == "" and result.stdout.count("\n") == 1


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", [
    "-m compare list",
    "-m compare.language.bigram --dtype float64 --steps 2",  # the comparison reports it
])
def test_stdout_on_a_full_device_is_one_line_and_exit_1(command):
    result = _shell(f"{sys.executable} {command} > /dev/full")
    assert result.returncode == 1
    assert result.stderr == "dualgrad: error: cannot write the output: No space left on device\n"


def test_cli_ctrl_c_is_one_line_and_130(capsys, monkeypatch):
    from compare.cli import commands as cli

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_list", interrupted)
    assert cli_main(["list"]) == 130
    assert capsys.readouterr().err.strip() == "dualgrad: interrupted"
