"""The engine's own numbers are honest: what the summary line, the metrics and the missing-tensor
rows say is true, and the metric computation leaks no warnings."""
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from compare import Tolerance
from compare.concept import Case, Concept, randn
from compare.metrics import measure, normwise_error
from compare.runner import compare_named, run_concept
from compare.verify import verify
from numpy_impl.layers import linear as numpy_linear
from torch_impl.layers import linear as torch_linear

ROOT = Path(__file__).resolve().parent.parent


class Tripled(numpy_linear.Linear):
    def forward(self, x):
        return 3.0 * super().forward(x)


def _concept(cls):
    case = Case("c", numpy=cls, torch=torch_linear.Linear,
                init=dict(in_features=3, out_features=2), inputs=dict(x=randn(5, 3)))
    return Concept("linear", "layers", "test", cases=[case])


def test_the_summary_shows_the_closest_to_bound_only_for_an_agreeing_run():
    agreeing = run_concept(_concept(numpy_linear.Linear), dtypes=["float64"])
    assert agreeing.passed and "closest to its bound: " in agreeing.summary_line()
    failing = run_concept(_concept(Tripled), dtypes=["float64"])
    line = failing.summary_line()
    assert "MISMATCH" in line and "closest to its bound" not in line
    assert "%" not in line  # the 9.2e+11% of a failing tensor is no margin


def test_overflowing_values_leak_no_warning():
    huge = np.array([1e308, -1e308, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diff = measure(huge, -huge, Tolerance(rtol=1e-10), case="c", dtype="float64",
                       check="numpy-vs-torch", name="out")
        assert not diff.passed and diff.max_abs == np.inf
        assert normwise_error(huge, -huge) == np.inf
        report = verify("activations:ReLU", _HugeRelu)
        assert not report.passed


class _HugeRelu(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x) * 1e308 * 1e10  # inf: the diagnosis must not warn either


def test_a_tensor_only_yours_returns_is_named_as_such():
    ours = {"out": np.ones(3), "out.extra": np.ones(2)}
    reference = {"out": np.ones(3)}
    diffs = compare_named(ours, reference, check="yours-vs-torch", case="c", dtype="float64",
                          tolerance=lambda *_: Tolerance(rtol=1e-10),
                          labels=("your implementation", "reference"))
    extra = next(d for d in diffs if d.name == "out.extra")
    assert not extra.passed and extra.note == "missing from the reference"
    assert "only the your implementation has a tensor named 'out.extra'" in extra.diagnosis
    assert "NaN" not in extra.diagnosis
    missing = compare_named({}, reference, check="yours-vs-torch", case="c", dtype="float64",
                            tolerance=lambda *_: Tolerance(rtol=1e-10),
                            labels=("your implementation", "reference"))[0]
    assert missing.note == "missing from the your implementation"
    assert "only the reference has" in missing.diagnosis


def test_importing_the_engine_leaves_matplotlibs_backend_alone():
    code = ("import matplotlib; matplotlib.use('svg'); import compare.plots, compare.report; "
            "from compare.plots import new_figure; new_figure(figsize=(1, 1)); "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""}, check=True)
    assert out.stdout.strip() == "svg"


def test_the_report_and_its_renderings_form_no_import_cycle():
    for module in ("text", "plots", "site/html", "metrics"):
        source = (ROOT / "compare" / f"{module}.py").read_text()
        runtime = source.split("if TYPE_CHECKING:")[0]
        assert "from compare.report import" not in runtime, module


def test_tolerance_keys_are_a_small_type_and_strings_keep_working():
    from compare.runner import tolerance_for
    from compare.tolerances import Scope
    assert Scope.parse("torch-vs-builtin:float32") == Scope("float32", "torch-vs-builtin")
    assert Scope.parse("float64:grad.param.b1") == Scope("float64", None, "grad.param.b1")
    assert Scope.parse("numpy-vs-torch:float32:out") == Scope("float32", "numpy-vs-torch", "out")
    assert str(Scope("fd", tensor="grad.param.w")) == "fd:grad.param.w"
    with pytest.raises(ValueError, match="expected"):
        Scope.parse("flaot32")
    loose = Tolerance(rtol=1e-2)
    case = Case("c", tolerance={Scope("float32", "torch-vs-builtin"): loose,
                                "float64:out": Tolerance(rtol=1e-12)})
    concept = Concept("x", "layers", "test", cases=[case])
    assert tolerance_for(concept, case, "torch-vs-builtin", "float32", "out") is loose
    assert tolerance_for(concept, case, "numpy-vs-torch", "float32", "out").rtol == 1e-4
    assert tolerance_for(concept, case, "yours-vs-torch", "float64", "out").rtol == 1e-12
