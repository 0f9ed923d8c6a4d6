"""verify: correct implementations pass, user errors are one clear sentence, the CLI's exit
codes, exercises, the pytest plugin. Deliberately broken backward passes: test_verify_broken.py."""
import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from compare import registry
from compare.cli import main
from compare.testing import assert_matches
from compare.verify import VerifyError, load, select_cases, verify
from numpy_impl.layers.linear import Linear

ROOT = Path(__file__).resolve().parent.parent


def _classes(side: str) -> list[tuple[str, str]]:
    """(concept, class name) for every reference class of every concept."""
    pairs = []
    for concept in registry.concepts().values():
        names = dict.fromkeys(getattr(c, side).__name__ for c in concept.cases
                              if getattr(c, side) is not None)
        pairs += [(concept.name, name) for name in names]
    return pairs


def _copy_of_twin(tmp_path: Path, tree: str, concept: str, name: str):
    """The library's own twin, copied to a file of the user's and loaded from there."""
    family = registry.get(concept).family
    path = tmp_path / f"mine_{tree}_{concept}.py"
    shutil.copy(ROOT / tree / family / f"{concept}.py", path)
    return load(f"{path}:{name}")


@pytest.mark.parametrize("concept, name", _classes("numpy"))
def test_a_copy_of_every_numpy_twin_passes(tmp_path, concept, name):
    impl = _copy_of_twin(tmp_path, "numpy_impl", concept, name)
    report = verify(f"{concept}:{name}", impl)
    assert report.passed, report.table()
    checks = {d.check for d in report.diffs}
    assert {"yours-vs-numpy", "yours-vs-torch"} <= checks
    module_concept = registry.get(concept).run is None  # own runners decide on fd themselves
    if module_concept and any(c.fd for c in registry.get(concept).cases):
        assert "yours-vs-fd" in checks


@pytest.mark.parametrize("concept, name", _classes("torch"))
def test_a_copy_of_every_torch_twin_passes(tmp_path, concept, name):
    impl = _copy_of_twin(tmp_path, "torch_impl", concept, name)
    # float32 where the concept has float32 cases (generalization's training sweeps run in
    # float64 only: in float32 there verify has nothing to run, and says so)
    float32 = any("float32" in case.dtypes for case in registry.get(concept).cases)
    report = verify(f"{concept}:{name}", impl, dtype="float32" if float32 else "float64")
    assert report.passed, report.table()
    if float32:
        assert all(d.referee for d in report.diffs if d.check == "yours-vs-torch")
    else:
        assert not verify(f"{concept}:{name}", impl, dtype="float32").ran


def test_a_correct_function_pair_passes():
    def mse_forward(input, target, reduction="mean"):
        diff = input - target
        loss = diff * diff
        return (loss.mean() if reduction == "mean" else loss.sum()
                if reduction == "sum" else loss), (diff, reduction)

    def mse_backward(grad_output, cache):
        diff, reduction = cache
        scale = 1.0 / diff.size if reduction == "mean" else 1.0
        dx = 2.0 * diff * grad_output * scale
        return dx, -dx

    report = verify("losses", (mse_forward, mse_backward))  # "mse" in the name picks MSELoss
    assert report.passed, report.table()
    assert report.summary.startswith("your mse_forward (function pair) vs the MSELoss twins")


def test_the_class_is_inferred_from_the_name_or_asked_for():
    assert select_cases("activations", "MyGelu")[2].__name__ == "GELU"
    assert select_cases("activations", "my_log_softmax")[2].__name__ == "LogSoftmax"
    assert select_cases("activations:Tanh", "anything")[2].__name__ == "Tanh"
    with pytest.raises(VerifyError, match="several classes .* say which, e.g. 'activations:"):
        select_cases("activations", "Mystery")
    with pytest.raises(VerifyError, match="no class 'Gelu'; its classes: ReLU"):
        select_cases("activations:Gelu", "x")
    with pytest.raises(VerifyError, match="unknown concept 'layrnorm'; did you mean layernorm"):
        select_cases("layrnorm", "x")


# --- user errors: one clear sentence, the user's own frames ---------------------------------
class RaisesInBackward(Linear):
    def backward(self, grad_output):
        return grad_output @ self.missing_attribute  # the user's bug


def test_an_exception_in_user_code_shows_the_users_frames():
    report = verify("linear", RaisesInBackward)
    assert not report.passed
    assert "your code raised AttributeError" in report.error
    assert "test_verify.py" in report.error and "self.missing_attribute" in report.error
    assert "compare/runner.py" not in report.error and "numpy_impl" not in report.error


def test_a_constructor_with_the_wrong_signature_is_one_sentence():
    class TakesNothing(Linear):
        def __init__(self):
            super().__init__(3, 5)

    report = verify("linear", TakesNothing)
    assert not report.passed and "\n" not in report.error
    assert report.error.startswith("TakesNothing(in_features=3, out_features=5, bias=True) "
                                   "cannot be called")
    assert "Linear(in_features: 'int', out_features: 'int', bias: 'bool' = True)" in report.error


def test_a_missing_method_is_one_sentence():
    class NoBackward:
        def __init__(self, in_features, out_features, bias=True):
            pass

        def forward(self, x):
            return x

    report = verify("linear", NoBackward)
    assert report.error.startswith("NoBackward has no backward(), load_state_dict()")
    assert "subclass numpy_impl.Module" in report.error


def test_a_float64_result_of_a_float32_run_is_one_note_and_the_values_still_count():
    class PromotesToFloat64(Linear):
        def forward(self, x):
            return super().forward(x) * np.float64(1.0)  # np.float64 scalar promotes float32

    report = verify("linear", PromotesToFloat64, dtype="float32")
    assert report.passed, report.table()  # the values agree once cast
    assert len(report.notes) == 1
    assert report.notes[0].startswith("in a float32 run your code returns float64 where "
                                      "float32 is expected (out")
    assert "np.zeros(shape)" in report.notes[0]
    assert report.to_dict()["notes"] == report.notes

    class PromotesAndIsWrong(Linear):
        def forward(self, x):
            return super().forward(x) * np.float64(2.0)

    report = verify("linear", PromotesAndIsWrong, dtype="float32", cases=["2d"])
    out = report.diff("out", case="2d", check="yours-vs-torch")
    assert not out.passed and "2" in out.diagnosis  # diagnosed as a value, not a dtype
    assert len(report.notes) == 1


def test_not_an_implementation_is_a_usage_error():
    with pytest.raises(VerifyError, match="expected a NumPy Module class"):
        verify("linear", 42)


# --- the command line ----------------------------------------------------------------------
def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.py"
    path.write_text(text)
    return path


GOOD = "from numpy_impl.layers.linear import Linear as MyLinear\n"
BAD = ("from numpy_impl.layers.linear import Linear\n"
       "class MyLinear(Linear):\n"
       "    def backward(self, g):\n"
       "        return -super().backward(g)\n")


@pytest.mark.parametrize("text, code", [(GOOD, 0), (BAD, 1)])
def test_cli_verify_exit_codes(capsys, tmp_path, text, code):
    path = _write(tmp_path, text)
    assert main(["verify", "linear", f"{path}:MyLinear"]) == code
    out = capsys.readouterr().out
    assert ("agree" if code == 0 else "MISMATCH") in out


def test_cli_verify_json_carries_the_diagnosis(capsys, tmp_path):
    path = _write(tmp_path, BAD)
    assert main(["verify", "linear", f"{path}:MyLinear", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = [d for d in report["diffs"] if not d["passed"]]
    assert failed and all(d["diagnosis"] for d in failed)
    assert {d["name"] for d in failed} == {"grad.input.x"}


@pytest.mark.parametrize("spec, message", [
    ("nowhere.py:X", "no such file: nowhere.py"),
    ("{path}:Nope", "defines no 'Nope'; it defines: "),
    ("{path}", "expected FILE.py:NAME"),
])
def test_cli_verify_unloadable_is_exit_2(capsys, tmp_path, spec, message):
    path = _write(tmp_path, "class Mine:\n    pass\n")
    assert main(["verify", "linear", spec.format(path=path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dualgrad: error: ") and message in err


def test_cli_verify_import_error_in_the_file_is_exit_2(capsys, tmp_path):
    path = _write(tmp_path, "import numpy as np\nraise RuntimeError('broken file')\n")
    assert main(["verify", "linear", f"{path}:X"]) == 2
    assert "cannot import" in capsys.readouterr().err


# --- exercises -----------------------------------------------------------------------------
def _module_classes() -> list[tuple[str, str]]:
    """Module classes of module concepts, whose cases hold constructor arguments."""
    from numpy_impl.module import Module
    return [(c, n) for c, n in _classes("numpy") if registry.get(c).run is None
            and inspect.isclass(cls := select_cases(f"{c}:{n}", "")[2]) and issubclass(cls, Module)]


@pytest.mark.parametrize("concept, name", _module_classes())
def test_every_exercise_skeleton_builds_with_the_references_state(capsys, tmp_path, concept,
                                                                  name):
    out = tmp_path / "exercise.py"
    assert main(["exercise", f"{concept}:{name}", "--out", str(out)]) == 0
    assert f"dualgrad verify {concept}:{name} {out}:{name}" in capsys.readouterr().out
    skeleton = load(f"{out}:{name}")
    _, cases, reference = select_cases(f"{concept}:{name}", "")
    mine, theirs = skeleton(**cases[0].init), reference(**cases[0].init)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    assert [p.shape for p in mine.parameters()] == [p.shape for p in theirs.parameters()]
    report = verify(f"{concept}:{name}", skeleton)
    assert not report.passed and report.nothing_ran and report.exit_code == 2
    reason = report.skipped[0][1]  # NotImplementedError: skipped, not failed
    assert f"NotImplementedError: exercise: write {name}.forward" in reason
    assert str(out) in reason  # the user's own file, not the engine's


def test_exercise_keeps_a_reference_base_class_that_is_not_module():
    import inspect as _inspect

    from compare.verify.exercise import _base_names, _imports_for

    class WideLinear(Linear):
        def __init__(self, in_features, out_features):
            super().__init__(in_features, 2 * out_features)

    init = _inspect.getsource(WideLinear.__init__)
    assert _base_names(WideLinear) == ["Linear"]
    assert "from numpy_impl.layers.linear import Linear" in _imports_for(WideLinear, init)


def test_exercise_refuses_a_class_that_is_not_a_module(capsys):
    assert main(["exercise", "optimizers:Adam", "--out", "-"]) == 2
    assert "exercise skeletons are forward/backward Modules; Adam" in capsys.readouterr().err


def test_exercise_refuses_to_overwrite(capsys, tmp_path):
    out = tmp_path / "mine.py"
    out.write_text("precious")
    assert main(["exercise", "linear", "--out", str(out)]) == 2
    assert out.read_text() == "precious"


# --- the pytest plugin ---------------------------------------------------------------------
def test_assert_matches_passes_and_fails_with_the_report():
    assert_matches("linear", Linear)
    with pytest.raises(AssertionError, match="does not match the linear references") as error:
        assert_matches("linear", RaisesInBackward)
    assert "your code raised AttributeError" in str(error.value)


def test_the_fixture_comes_from_the_installed_plugin(assert_matches):
    assert_matches("linear", Linear, dtype="float32")
