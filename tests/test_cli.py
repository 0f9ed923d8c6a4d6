"""The command line: exit codes, one-line errors, the JSON shape, list, show, plots."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compare.cli import main, side_by_side

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_family_and_concept(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert out.startswith("layers:\n") and "  linear " in out


def test_list_json_one_object_per_concept(capsys):
    code, out, _ = run(capsys, "list", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and {"concept", "family", "summary", "cases"} <= set(rows[0])


def test_run_json_shape(capsys):
    code, out, _ = run(capsys, "run", "linear", "--json", "--dtype", "float64")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["concept"] == "linear" and report["passed"] is True
    diff = next(d for d in report["diffs"] if d["name"] == "grad.param.weight")
    assert {"name", "max_abs", "max_rel", "passed", "kind", "check", "case", "dtype"} <= set(diff)
    assert diff["kind"] == "parameter gradient"
    kinds = {d["kind"] for d in report["diffs"]}
    assert {"output", "input gradient", "parameter gradient"} <= kinds
    assert all(d["dtype"] == "float64" for d in report["diffs"])


def test_run_prints_a_table_and_exits_0(capsys):
    code, out, _ = run(capsys, "run", "linear", "--dtype", "float32")
    assert code == 0
    assert "numpy-vs-torch   grad.param.weight" in out and "closer to float64" in out
    assert "layers/linear: agree" in out


def test_run_exits_1_on_a_mismatch(capsys, monkeypatch):
    from compare import registry
    from numpy_impl.layers.linear import Linear

    class Wrong(Linear):
        def backward(self, grad_output):
            return -super().backward(grad_output)  # sign flipped

    concept = registry.get("linear")
    case = concept.cases[0]
    monkeypatch.setattr(concept, "cases", [type(case)(**{**case.__dict__, "numpy": Wrong})])
    code, out, _ = run(capsys, "run", "linear", "--dtype", "float64")
    assert code == 1 and "FAIL" in out and "MISMATCH" in out


@pytest.mark.parametrize("argv, message", [
    (["run", "layrnorm"], "unknown concept 'layrnorm'"),
    (["run", "linea"], "did you mean linear"),
    (["run", "linear", "--dtype", "float16"], "invalid choice: 'float16'"),
    (["run"], "name at least one concept"),
    (["run", "linear", "--all"], "not both"),
    (["run", "linear", "--seed", "x"], "invalid int value"),
    (["run", "linear", "--device", "cuda:0"] if not os.environ.get("CUDA_VISIBLE_DEVICES")
     else ["run", "linear", "--device", "nonsense"], "--device"),
    (["show", "nothing"], "unknown concept 'nothing'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_usage_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("dualgrad: error: ") and message in err


def test_unwritable_plots_directory_is_exit_2(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run(capsys, "run", "linear", "--plots", str(blocker / "plots"))
    assert code == 2 and err.startswith("dualgrad: error: cannot write plots to ")
    assert err.count("\n") == 1


def test_plots_writes_one_png_per_concept(capsys, tmp_path):
    code, _, err = run(capsys, "run", "linear", "--dtype", "float64", "--plots", str(tmp_path))
    png = tmp_path / "linear.png"
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in err


def test_show_puts_the_twins_side_by_side(capsys):
    code, out, _ = run(capsys, "show", "linear", "--width", "120")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("numpy_impl/layers/linear.py") and "torch_impl/layers/linear.py" \
        in lines[0]
    assert max(len(line) for line in lines) <= 120
    assert any("def linear_backward" in line for line in lines)
    assert any("import torch" in line.split(" | ")[-1] for line in lines)


def test_side_by_side_wraps_long_lines_to_the_width():
    text = side_by_side("a" * 100, "short", "left", "right", width=50)
    assert max(len(line) for line in text.splitlines()) <= 50
    assert text.count("a") == 100


def test_python_dash_m_compare_and_concept_module_run(tmp_path):
    for argv in (["-m", "compare", "run", "linear", "--dtype", "float64", "--json"],
                 ["-m", "compare.layers.linear", "--dtype", "float64", "--json"]):
        result = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["passed"] is True


def test_all_shows_progress_per_concept(capsys):
    code, out, err = run(capsys, "run", "--all", "--dtype", "float64", "--json")
    from compare import registry
    n = len(registry.concepts())
    progress = [line for line in err.splitlines() if line.startswith("[")]
    assert len(progress) == n and progress[-1].startswith(f"[{n}/{n}]")
    assert len(out.splitlines()) == n and code == 0


def test_bench_times_both_twins(capsys):
    code, out, _ = run(capsys, "bench", "linear", "layernorm", "--repeat", "2", "--dtype",
                       "float64", "--json", "--no-memory")
    records = [json.loads(line) for line in out.splitlines()]
    rows = [r for r in records if "concept" in r]
    assert code == 0 and "environment" in records[0]
    assert [r["concept"] for r in rows] == ["linear", "layernorm"]
    assert all(r["median_ms"]["numpy"] > 0 and r["median_ms"]["builtin"] > 0 and r["runs"] == 2
               for r in rows)
    assert rows[0]["ratio_median"] == pytest.approx(rows[0]["median_ms"]["numpy"]
                                                    / rows[0]["median_ms"]["builtin"])


@pytest.mark.parametrize("argv, message", [(["bench", "nope"], "unknown concept 'nope'"),
                                           (["bench", "linear", "--repeat", "0"], "at least 1")])
def test_bench_bad_usage(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err


def test_report_writes_an_index_and_a_page_per_concept(capsys, tmp_path):
    code, out, err = run(capsys, "report", str(tmp_path), "linear")
    assert code == 0 and f"wrote {tmp_path / 'index.html'}" in out
    index = (tmp_path / "index.html").read_text()
    page = (tmp_path / "linear.html").read_text()
    assert "<a href='linear.html'>linear</a>" in index and "agree" in index
    assert "numpy_impl/layers/linear.py" in page and "torch_impl/layers/linear.py" in page
    assert "def linear_backward" in page and "<img src='linear.png'" in page
    assert (tmp_path / "linear.png").read_bytes()[:4] == b"\x89PNG"
