"""The pytest plugin: it loads in a project that has its own ``compare`` module, imports
nothing of dualgrad at load time, and fails like torch.testing.assert_close."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from dualgrad_pytest import assert_matches
from numpy_impl.layers.linear import Linear

ROOT = Path(__file__).resolve().parent.parent


def _scratch_project(tmp_path: Path) -> Path:
    """A project with its own compare.py AND compare/ package, and one test using the fixture."""
    project = tmp_path / "project"
    (project / "compare").mkdir(parents=True)
    (project / "compare.py").write_text("VALUE = 'the project module'\n")
    (project / "compare" / "__init__.py").write_text("VALUE = 'the project package'\n")
    (project / "test_theirs.py").write_text(
        "import compare\n\n"
        "def test_their_compare_is_theirs():\n"
        "    assert compare.VALUE == 'the project package'\n\n"
        "def test_the_fixture_is_there(assert_matches):\n"
        "    assert callable(assert_matches)\n")
    return project


def _pytest_in(project: Path, plugin: str) -> subprocess.CompletedProcess:
    # As if dualgrad were installed from its wheel: this checkout on the path after the
    # project (python -m pytest puts the current directory first). `-S` skips site's .pth
    # files, so an editable install of another checkout in this environment (its import hook)
    # cannot answer for `compare`; site-packages is on PYTHONPATH for pytest itself.
    # Entry-point autoload is off for the same reason; -p loads the plugin module exactly as
    # the entry point does.
    path = os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]])
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-S", "-m", "pytest", "-q", "-p", plugin,
                           "-p", "no:cacheprovider", "--rootdir", str(project), str(project)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)


def test_the_entry_point_names_a_module_of_this_distribution_alone():
    text = (ROOT / "pyproject.toml").read_text()  # tomllib is 3.11+; the section is two lines
    assert '[project.entry-points.pytest11]\ndualgrad = "dualgrad_pytest"\n' in text
    assert 'py-modules = ["dualgrad_pytest"]' in text


def test_a_project_with_its_own_compare_runs_its_tests(tmp_path):
    project = _scratch_project(tmp_path)
    result = _pytest_in(project, "dualgrad_pytest")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_old_plugin_location_is_what_broke_such_projects(tmp_path):
    # the reproduction: a plugin inside `compare` cannot be found when `compare` is theirs
    result = _pytest_in(_scratch_project(tmp_path), "compare.testing")
    assert result.returncode != 0
    assert "compare.testing" in result.stdout + result.stderr


def test_loading_the_plugin_imports_nothing_of_dualgrad():
    code = ("import sys, dualgrad_pytest; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('compare', 'numpy_impl', 'torch_impl', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
    assert out.strip() == "[]"


class HalfBias(Linear):
    """The bias gradient halved: one tensor wrong in every case that has a bias."""

    def backward(self, grad_output):
        grad_x = super().backward(grad_output)
        if self.bias is not None:
            self.bias.grad *= 0.5
        return grad_x


def test_a_match_passes():
    assert_matches("linear", Linear, cases=["2d"])


def test_failure_reads_like_assert_close():
    with pytest.raises(AssertionError) as raised:
        assert_matches("linear", HalfBias, cases=["2d", "3d-leading"], msg="see exercise 3")
    text = str(raised.value)
    headline, worst = text.splitlines()[:2]
    # yours-vs-numpy, yours-vs-torch and yours-vs-fd fail for the bias in both cases
    assert headline == ("HalfBias does not match the linear references: 6 of 22 comparisons "
                        "outside tolerance (1 tensor: grad.param.bias).")
    assert worst.startswith("Worst: grad.param.bias (case '2d', float64, yours-vs-numpy)")
    assert "Diagnosis: " in text and "0.5" in text
    rows = [line for line in text.splitlines() if line.startswith("  yours-")]
    assert len(rows) == 6 and all(line.rstrip().endswith("FAIL") or "FAIL" in line
                                  for line in rows)
    assert text.rstrip().endswith("see exercise 3")


def test_rtol_and_atol_decide_the_checks_against_the_twins():
    class Nudged(Linear):  # the output off by 1e-7 relative: fails 1e-10, passes 1e-6
        def forward(self, x):
            return super().forward(x) * (1 + 1e-7)

    with pytest.raises(AssertionError, match="out"):
        assert_matches("linear", Nudged, cases=["2d"])
    assert_matches("linear", Nudged, cases=["2d"], rtol=1e-6)
    with pytest.raises(AssertionError):
        assert_matches("linear", Nudged, cases=["2d"], rtol=0.0, atol=0.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(rtol=-1.0), "rtol must be a finite number >= 0"),
    (dict(atol=float("nan")), "atol must be a finite number >= 0"),
    (dict(cases=["nope"]), "cases: linear has no case 'nope'"),
    (dict(seed=-3), "seed must be a whole number"),
])
def test_bad_options_raise_one_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        assert_matches("linear", Linear, **kwargs)


def test_an_exception_in_the_users_code_is_the_headline():
    class Broken(Linear):
        def forward(self, x):
            return np.log(x.shape)[5]  # IndexError in the user's code

    with pytest.raises(AssertionError) as raised:
        assert_matches("linear", Broken, cases=["2d"])
    assert str(raised.value).startswith("Broken does not match the linear references: case '2d'")
    assert "IndexError" in str(raised.value)
