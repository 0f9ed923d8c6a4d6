"""verify against user code that misbehaves (issue 10's verify bullet): each problem is one
sentence naming what was expected, and the run goes on to the next case where it can."""
import json
import textwrap

import numpy as np
import pytest
import torch

from compare.cli import main
from compare.verify import load, verify
from numpy_impl.layers.linear import Linear

CASES = ["2d", "3d-leading"]  # two of linear's cases: enough to see the run go on


def _file(tmp_path, text, name="mine.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _returning(value):
    class Mine(Linear):
        def forward(self, x):
            super().forward(x)
            return value(x) if callable(value) else value
    return Mine


@pytest.mark.parametrize("value, sentence", [
    (None, "Mine.forward returned None as out, expected an array of shape (4, 5)"),
    ("done", "Mine.forward returned a str as out, expected an array of shape (4, 5)"),
    (lambda x: [1.0, 2.0], "Mine.forward returned a list, expected an array of shape (4, 5)"),
    (lambda x: np.array([object()] * 20).reshape(4, 5),
     "Mine.forward returned out of dtype object, expected an array of shape (4, 5) of numbers"),
    (lambda x: torch.zeros(4, 5), "Mine.forward returned a torch tensor as out; a NumPy class "
                                  "returns NumPy arrays (an array of shape (4, 5))"),
    (lambda x: np.zeros((5, 4), x.dtype), "Mine.forward returned out of shape (5, 4), "
                                          "expected (4, 5)"),
])
def test_a_bad_forward_result_is_one_sentence_per_case(value, sentence):
    report = verify("linear", _returning(value), cases=CASES)
    assert report.exit_code == 1 and report.ran == 2  # both cases ran and were reported
    first, second = report.error.splitlines()
    assert first == f"case '2d', float64: {sentence}"
    assert second.startswith("case '3d-leading', float64: Mine.forward returned")
    assert "finite_diff" not in report.error and "runner.py" not in report.error


def test_a_backward_returning_none_is_one_sentence():
    class Mine(Linear):
        def backward(self, grad_output):
            super().backward(grad_output)

    report = verify("linear", Mine, cases=["2d"])
    assert report.error == ("case '2d', float64: Mine.backward returned None, expected the "
                            "gradient of x (an array of shape (4, 3))")


def test_a_torch_module_returning_numpy_is_one_sentence():
    from torch_impl.layers.linear import Linear as TorchLinear

    class Mine(TorchLinear):
        def forward(self, x):
            return super().forward(x).detach().numpy()

    report = verify("linear", Mine, cases=["2d"])
    assert report.error == ("case '2d', float64: Mine.forward returned a NumPy array as out; a "
                            "torch module returns tensors (a tensor of shape (4, 5)) so that "
                            "autograd can differentiate it")


def test_sys_exit_in_forward_is_reported_not_obeyed():
    class Mine(Linear):
        def forward(self, x):
            raise SystemExit(3)

    report = verify("linear", Mine, cases=CASES)
    assert report.exit_code == 1
    assert report.error == ("case '2d', float64: your code called sys.exit(3); code under test "
                            "must return or raise, not exit")


def test_infinite_recursion_is_one_line():
    class Mine(Linear):
        def forward(self, x):
            return self.forward(x)

    report = verify("linear", Mine, cases=["2d"])
    assert len(report.error.splitlines()) == 1 and len(report.error) < 400
    assert "RecursionError: maximum recursion depth exceeded" in report.error
    assert "forward calls itself without end" in report.error and "repeated" in report.error


def test_sys_exit_at_import_is_exit_2_in_one_line(capsys, tmp_path):
    path = _file(tmp_path, "import sys\nsys.exit(4)\n")
    assert main(["verify", "linear", f"{path}:Mine"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "it calls sys.exit(4) at import" in err


def test_user_prints_go_to_stderr_under_json(capsys, tmp_path):
    path = _file(tmp_path, """
        from numpy_impl.layers.linear import Linear
        print("importing mine")

        class Mine(Linear):
            def forward(self, x):
                print("debug: forward")
                return super().forward(x)
        """)
    assert main(["verify", "linear", f"{path}:Mine", "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # stdout is the JSON object alone
    assert data["passed"] and data["skipped"] == 0 and data["ran"] > 0
    assert "importing mine" in captured.err and "debug: forward" in captured.err


def test_the_file_is_imported_only_after_the_concept_is_validated(capsys, tmp_path):
    marker = tmp_path / "imported"
    path = _file(tmp_path, f"open({str(marker)!r}, 'w').close()\n")
    assert main(["verify", "layrnorm", f"{path}:Mine"]) == 2
    assert "unknown concept 'layrnorm'" in capsys.readouterr().err
    assert not marker.exists()


def test_the_files_folder_is_on_sys_path(tmp_path):
    _file(tmp_path, "SCALE = 1.0\n", name="helper_sibling.py")
    path = _file(tmp_path, """
        from helper_sibling import SCALE
        from numpy_impl.layers.linear import Linear

        class Mine(Linear):
            def forward(self, x):
                return super().forward(x) * SCALE
        """)
    assert verify("linear", load(f"{path}:Mine"), cases=["2d"]).passed


def test_a_module_inside_a_package(tmp_path, monkeypatch):
    package = tmp_path / "studentpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    _file(package, """
        from numpy_impl.layers.linear import Linear

        class Mine(Linear):
            pass
        """, name="layers_mine.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["verify", "linear", "studentpkg.layers_mine:Mine"]) == 0


def test_a_numpy_class_in_a_file_importing_torch_is_a_numpy_class(tmp_path):
    path = _file(tmp_path, """
        import torch  # imported for something else: the class decides, not the file
        from numpy_impl.layers.linear import Linear

        class Mine(Linear):
            pass
        """)
    report = verify("linear", load(f"{path}:Mine"), cases=["2d"])
    assert report.passed and "(NumPy class)" in report.summary
    assert "yours-vs-fd" in {d.check for d in report.diffs}


def test_skipped_is_not_failed_and_nothing_run_is_exit_2(capsys, tmp_path):
    path = _file(tmp_path, """
        from numpy_impl.layers.linear import Linear

        class Mine(Linear):
            def forward(self, x):
                if x.ndim > 2:
                    raise NotImplementedError("only (N, D) inputs")
                return super().forward(x)

        class Never(Linear):
            def forward(self, x):
                raise NotImplementedError
        """)
    mine = verify("linear", load(f"{path}:Mine"), cases=CASES)
    assert mine.exit_code == 0 and mine.ran == 1
    assert mine.skipped[0][0] == "3d-leading" and "NotImplementedError: only (N, D) inputs" \
        in mine.skipped[0][1]
    assert main(["verify", "linear", f"{path}:Never", "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["ran"] == 0 and data["skipped"] == len(data["skipped_cases"]) > 0
