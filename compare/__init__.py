"""The comparison engine: concepts, the runner, metrics, reports, plots, finite differences,
and the Python API (``run``, ``verify``, ``show``, ``list_concepts``; see ``compare.api``).

These top-level modules are the core every comparison runs through; the tools built on it live
in three subpackages: ``compare.verify`` (checking your own code), ``compare.site`` (the HTML
report) and ``compare.cli`` (the command line).

``compare.verify`` is the API function: the subpackage is imported before the function is
bound, since importing a subpackage afterwards would rebind the package attribute to it.
"""
import compare.verify  # noqa: F401 -- first, see above
from compare.api import list_concepts, run, show, verify
from compare.concept import Case, Concept, Outcome, Trial
from compare.finite_diff import check_function_gradients, check_module_gradients, numerical_gradient
from compare.registry import concepts, get
from compare.report import Diff, Report
from compare.runner import run_concept
from compare.tolerances import Tolerance

__all__ = ["Case", "Concept", "Diff", "Outcome", "Report", "Tolerance", "Trial",
           "check_function_gradients", "check_module_gradients", "concepts", "get",
           "list_concepts", "numerical_gradient", "run", "run_concept", "show", "verify"]
