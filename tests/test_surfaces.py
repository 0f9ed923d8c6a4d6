"""The surfaces a person touches: the common options of the command line, colour and the
progress bar, `dualgrad list` without torch, and the Python API (ValueError naming the
argument, a short repr, a Figure from report.plot() without touching matplotlib's state)."""
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import compare
from compare.cli import main, term

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- the bad-input table of the common options ------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["run", "linear", "--seed", "-1"], "argument --seed: invalid seed '-1'"),
    (["run", "linear", "--seed", "1e23"], "argument --seed: invalid int value '1e23'"),
    (["run", "linear", "--seed", "4294967296"], "invalid seed '4294967296'"),
    (["run", "linear", "--seed", "1.5"], "argument --seed"),
    (["verify", "linear", "x.py:X", "--seed", "-1"], "argument --seed"),
    (["report", "out", "linear", "--seed", "-1"], "argument --seed"),
    (["run", "linear", "--device", "meta"], "invalid device 'meta': expected cpu, cuda"),
    (["run", "linear", "--device", "mps"], "invalid device 'mps'"),
    (["run", "linear", "--device", "cpu:0"], "invalid device 'cpu:0'"),
    (["run", "linear", "--device", "cuda:x"], "invalid device 'cuda:x'"),
    (["bench", "linear", "--all"], "not both"),
    (["bench", "linear", "--repeat", "0"], "--repeat and --threads must be at least 1"),
])
def test_bad_common_options_are_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("dualgrad: error: ") and message in err, err


def test_the_largest_seed_is_accepted(capsys):
    code, out, _ = run(capsys, "run", "linear", "--dtype", "float64", "--seed", str(2**32 - 1))
    assert code == 0 and f"(seed {2**32 - 1})" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("dualgrad ")


def test_failures_only_keeps_only_failing_rows(capsys, monkeypatch):
    from compare import registry
    from numpy_impl.layers.linear import Linear

    class Wrong(Linear):
        def backward(self, grad_output):
            grad_x = super().backward(grad_output)
            if self.bias is not None:
                self.bias.grad *= 2.0
            return grad_x

    concept = registry.get("linear")
    case = concept.cases[0]
    monkeypatch.setattr(concept, "cases", [type(case)(**{**case.__dict__, "numpy": Wrong})])
    code, out, _ = run(capsys, "run", "linear", "--dtype", "float64", "--failures-only")
    rows = [line for line in out.splitlines() if line.startswith("  numpy-vs-torch")
            or line.startswith("  torch-vs-builtin")]
    assert code == 1 and rows and all("FAIL" in line for line in rows)
    assert all("grad.param.bias" in line for line in rows)
    assert "MISMATCH" in out


def test_verify_failures_only_keeps_only_failing_rows(capsys, tmp_path):
    mine = tmp_path / "mine.py"
    mine.write_text("from numpy_impl.layers.linear import Linear\n\n\n"
                    "class DoubledBias(Linear):\n"
                    "    def backward(self, grad_output):\n"
                    "        grad_x = super().backward(grad_output)\n"
                    "        if self.bias is not None:\n"
                    "            self.bias.grad *= 2.0\n"
                    "        return grad_x\n")
    code, out, _ = run(capsys, "verify", "linear", f"{mine}:DoubledBias", "--failures-only")
    rows = [line for line in out.splitlines() if line.startswith("  yours-vs-")]
    assert code == 1 and rows and all("FAIL" in line for line in rows)
    assert all("grad.param.bias" in line for line in rows)


# --- colour and progress -----------------------------------------------------------------------
class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_on_a_terminal_only_and_never_under_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert term.highlight("x FAIL y agree", Tty()) == \
        "x \033[31mFAIL\033[0m y \033[32magree\033[0m"
    assert term.highlight("x FAIL", io.StringIO()) == "x FAIL"  # a pipe or a file
    monkeypatch.setenv("NO_COLOR", "1")
    assert term.highlight("x FAIL", Tty()) == "x FAIL"


def test_run_output_piped_has_no_escape_codes(capsys):
    _, out, err = run(capsys, "run", "linear", "dropout", "--dtype", "float64")
    assert "\033[" not in out + err


def test_progress_bar_draws_on_a_terminal_with_elapsed_and_eta():
    stream = Tty()
    with term.Progress(4, stream=stream) as bar:
        bar.advance("linear")
        bar.advance("layernorm")
    text = stream.getvalue()
    assert "[############............] 2/4 layernorm 0:00 elapsed, ETA 0:00" in text
    assert text.endswith("\r\033[K")  # the line is cleared at the end


def test_progress_bar_is_silent_when_not_a_terminal():
    stream = io.StringIO()
    with term.Progress(3, stream=stream) as bar:
        bar.advance("linear")
    assert stream.getvalue() == ""


def test_several_concepts_log_one_line_each_on_stderr_when_not_a_terminal(capsys):
    code, out, err = run(capsys, "run", "linear", "dropout", "--dtype", "float64")
    assert code == 0 and out.rstrip().endswith("2 concepts run; all agree")
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("[1/2] layers/linear: agree")


# --- list without torch ------------------------------------------------------------------------
def test_list_does_not_import_torch_and_is_fast():
    code = ("import sys, time; t = time.perf_counter(); from compare.cli import main; "
            "main(['list']); print(time.perf_counter() - t, 'torch' in sys.modules, "
            "file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, check=True)
    seconds, torch_loaded = result.stderr.split()
    assert torch_loaded == "False"
    assert "  linear " in result.stdout and "witness: nn.Linear" in result.stdout
    assert float(seconds) < 2.0  # measured 0.2 s on an idle core; generous for a busy machine


def test_show_does_not_import_torch():
    code = ("import sys; from compare.cli import main; import compare; "
            "main(['show', 'layers/linear', '--width', '100']); compare.show('dropout'); "
            "print('torch' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, check=True)
    assert result.stderr.strip() == "False"
    assert result.stdout.startswith("numpy_impl/layers/linear.py")


def test_list_shows_every_registered_concept(capsys):
    _, out, _ = run(capsys, "list")
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == compare.list_concepts()


# --- the Python API -----------------------------------------------------------------------------
def test_api_run_returns_a_report_with_a_short_repr():
    report = compare.run("linear", dtype="float64", seed=3, cases=["2d"])
    assert report.passed and report.seed == 3
    assert {d.case for d in report.diffs} == {"2d"}
    assert repr(report) == (f"<Report layers/linear: agree, {len(report.diffs)} tensors, "
                            "0 failing, seed 3>")


def test_api_takes_a_concept_object():
    concept = compare.get("dropout")
    assert compare.run(concept, dtype="float32", cases="2d").passed


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=-1), "seed must be a whole number from 0 to 4294967295, got -1"),
    (dict(seed=1e23), "seed must be a whole number"),
    (dict(seed=True), "seed must be a whole number"),
    (dict(dtype="float16"), "dtype must be float64, float32 or both, got 'float16'"),
    (dict(cases=["nope"]), "cases: linear has no case 'nope'"),
    (dict(cases=[]), "cases: an empty selection"),
    (dict(device="meta"), "device must be cpu, cuda or cuda:N, got 'meta'"),
])
def test_api_run_bad_values_raise_value_error_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare.run("linear", **kwargs)


def test_api_unknown_concept():
    with pytest.raises(ValueError, match="concept: unknown concept 'linaer'; did you mean linear"):
        compare.run("linaer")
    with pytest.raises(ValueError, match="concept must be a concept name or a Concept"):
        compare.run(42)


def test_api_verify_is_a_thin_wrapper(tmp_path):
    from numpy_impl.layers.linear import Linear
    assert compare.verify("linear", Linear, cases=["2d"]).passed
    path = tmp_path / "mine.py"
    path.write_text("from numpy_impl.layers.linear import Linear as MyLinear\n")
    assert compare.verify("linear", f"{path}:MyLinear", cases="2d").passed
    with pytest.raises(ValueError, match="seed must be"):
        compare.verify("linear", Linear, seed=-2)
    with pytest.raises(ValueError, match="defines no 'Nope'"):
        compare.verify("linear", f"{path}:Nope")


def test_api_show_and_list_concepts():
    text = compare.show("linear", width=100)
    assert text.splitlines()[0].startswith("numpy_impl/layers/linear.py")
    assert repr(text) == str(text)  # a notebook shows the code, not a quoted string
    with pytest.raises(ValueError, match="width must be"):
        compare.show("linear", width=100000)
    assert "linear" in compare.list_concepts("layers")
    assert "linear" not in compare.list_concepts("vision")
    with pytest.raises(ValueError, match="family must be one of"):
        compare.list_concepts("nope")


def test_report_plot_is_a_figure_and_matplotlib_state_is_untouched(tmp_path):
    code = (
        "import matplotlib; matplotlib.use('svg'); import sys, compare; "
        "r = compare.run('linear', dtype='float64', cases=['2d']); fig = r.plot(); "
        "from matplotlib.figure import Figure; "
        f"p = r.plot({str(tmp_path / 'f.png')!r}); "
        "pyplot = 'matplotlib.pyplot' in sys.modules; "  # before get_backend, which imports it
        "print(isinstance(fig, Figure), matplotlib.get_backend(), pyplot, p.exists())")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "svg", "False", "True"]



def test_histogram_of_errors_a_few_ulp_apart_is_drawn():
    # the README's MyLinear bias gradient: two elements, both off by exactly a factor of 12,
    # whose log10 relative errors differ in the last bit -- numpy cannot make 40 bins of that
    import numpy as np

    from compare import plots
    from compare.metrics import measure
    from compare.tolerances import Tolerance
    b = np.array([5.11865749, -2.41953999])
    d = measure(b / 12, b, Tolerance(rtol=1e-10), case="4d-leading", dtype="float64",
                check="yours-vs-numpy", name="grad.param.bias")
    fig = plots.new_figure(figsize=(4, 3))
    plots._histogram(fig.add_subplot(), d)
    assert sum(p.get_height() for p in fig.axes[0].patches) == 2
